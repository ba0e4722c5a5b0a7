// What a new input shape costs the planner: binding the symbols, checking the guards, evaluating
// every shape and planning memory (make_plan), for an engine built from an ONNX model.
//   unirt_bench_plan MODEL.onnx [cpu|cuda] [fp32|fp16] SHAPE...   (SHAPE: input:1x3x224x224)
// Prints the median over 200 plans per shape. Uses only make_plan/build_engine, so the same
// source also times older unirt versions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/planner.h"

int main(int argc, char** argv) {
  using namespace unirt;
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODEL.onnx cpu|cuda fp32|fp16 SHAPE...\n", argv[0]);
    return 2;
  }
  try {
    BuildOptions o;
    o.backend = argv[2];
    o.precision = std::string(argv[3]) == "fp16" ? Precision::FP16 : Precision::FP32;
    const Engine e = build_engine_from_onnx(argv[1], o);
    std::printf("%s (%s %s): %zu nodes, %zu values\n", argv[1], argv[2], argv[3], e.graph.nodes.size(), e.graph.values.size());
    for (int a = 4; a < argc; ++a) {
      const auto shapes = parse_shapes(argv[a]);
      std::vector<double> us;
      size_t steps = 0;
      for (int i = 0; i < 200; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const Plan p = make_plan(e, shapes);
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        steps = p.steps.size();
      }
      std::sort(us.begin(), us.end());
      std::printf("  %-28s %4zu steps  make_plan median %8.1f us  (p90 %8.1f us)\n", argv[a], steps, us[us.size() / 2],
                  us[us.size() * 9 / 10]);
    }
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "error: %s\n", ex.what());
    return 1;
  }
  return 0;
}
