// What a data-dependent size costs at run time on the CUDA backend. Each such node ends a
// segment: the runtime reads the size back (one stream synchronisation), then runs the segment
// after it, captured as its own CUDA graph once that size has been seen twice; a size not seen
// before is prepared and run eagerly.
//   unirt_bench_data_sizes [iterations]
// Rows (median latency per call, device buffers, no host copies of inputs/outputs):
//   chain            32 element-wise ops on [80, 1000], one captured graph
//   chain+topk       the same with a TopK (per row, k = 400 of 1000) in the middle, k a constant
//   chain+size       the same TopK with k given as data, the same k every call: the difference
//                    to chain+topk is what the read-back and the second graph launch cost
//   chain+new size   the same, k different on every call (200 values cycling, more than the
//                    segment cache holds): the segment after it is prepared every time
//   nms 80x1000      NonMaxSuppression of 80 classes x 1000 boxes, then Gather of the selection,
//                    one fixed input (its count repeats)
//   nms varying      the same, 16 different inputs in turn (counts differ)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "onnx/importer.h"
#include "runtime/session.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

void int64_input(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims) {
  auto* in = g->add_input();
  in->set_name(name);
  auto* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::INT64);
  for (auto d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
}

// x[80, 1000] -> 16 ops -> (TopK along the rows, k a constant or an input, or nothing) -> 16 ops.
enum class Middle { None, TopKConstant, TopKData };
onnx::ModelProto chain_model(Middle middle) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"80", "1000"});
  std::string prev = "x";
  auto op = [&](const char* type) {
    const std::string out = "t" + std::to_string(g->node_size());
    add_node(g, type, {prev}, {out});
    prev = out;
  };
  for (int i = 0; i < 16; ++i) op(i % 2 ? "Neg" : "Abs");
  if (middle != Middle::None) {
    if (middle == Middle::TopKData) int64_input(g, "k", {1});
    else add_init_i64(g, "k", {400});
    add_node(g, "TopK", {prev, "k"}, {"top", "top_i"}, "topk");
    prev = "top";
  }
  for (int i = 0; i < 16; ++i) op(i % 2 ? "Neg" : "Abs");
  add_node(g, "Identity", {prev}, {"y"});
  g->add_output()->set_name("y");
  return m;
}

onnx::ModelProto nms_model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "boxes", {"1", "1000", "4"});
  add_input(g, "scores", {"1", "80", "1000"});
  add_init_i64(g, "max_out", {100});
  add_init(g, "iou", {1}, {0.5f});
  add_init(g, "thr", {1}, {0.05f});
  add_node(g, "NonMaxSuppression", {"boxes", "scores", "max_out", "iou", "thr"}, {"sel"}, "nms");
  add_scalar_i64(g, "col2", 2);
  add_int(add_node(g, "Gather", {"sel", "col2"}, {"bi"}), "axis", 1);
  add_scalar_i64(g, "b0", 0);
  add_int(add_node(g, "Gather", {"boxes", "b0"}, {"boxes0"}), "axis", 0);
  add_int(add_node(g, "Gather", {"boxes0", "bi"}, {"kept"}), "axis", 0);
  g->add_output()->set_name("kept");
  return m;
}

struct Bench {
  std::shared_ptr<Engine> engine;
  std::unique_ptr<Session> session;
  std::vector<TensorView> ins, outs;
  Backend* backend = nullptr;

  explicit Bench(onnx::ModelProto m) {
    BuildOptions o;
    o.backend = "cuda";
    engine = std::make_shared<Engine>(build_engine(import_onnx_bytes(model_bytes(m), "bench"), o));
    session = std::make_unique<Session>(engine, make_cuda_backend());
    backend = &session->backend();
    const Graph& g = engine->graph;
    std::vector<std::vector<int64_t>> shapes;
    for (int id : g.inputs) {
      TensorView t;
      t.dtype = g.value(id).dtype;
      t.shape = shape_values(g.value(id).shape);
      t.data = backend->alloc(std::max<size_t>(1, t.bytes()));
      shapes.push_back(t.shape);
      ins.push_back(t);
    }
    const auto oshapes = session->output_shapes(shapes);
    for (size_t i = 0; i < oshapes.size(); ++i) {
      TensorView t;
      t.dtype = g.value(g.outputs[i]).dtype;
      t.shape = oshapes[i];
      t.data = backend->alloc(std::max<size_t>(1, t.bytes()));
      outs.push_back(t);
    }
  }
  void set(size_t input, const void* host, size_t bytes) { backend->copy_from_host(ins[input].data, host, bytes); }
  double call_us() {
    const auto t0 = std::chrono::steady_clock::now();
    session->execute(ins, outs);
    session->synchronize();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::max(10, std::atoi(argv[1])) : 500;
  try {
    std::string why;
    if (!cuda_backend_available(&why)) {
      std::fprintf(stderr, "no GPU: %s\n", why.c_str());
      return 1;
    }
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<float> x(80 * 1000);
    for (auto& v : x) v = nd(rng);
    std::printf("| case | median us | what runs |\n|---|---:|---|\n");
    for (Middle mid : {Middle::None, Middle::TopKConstant}) {
      Bench b(chain_model(mid));
      b.set(0, x.data(), x.size() * 4);
      std::vector<double> t;
      for (int i = 0; i < iters + 10; ++i) t.push_back(b.call_us());
      t.erase(t.begin(), t.begin() + 10);
      std::printf("| chain%s | %.1f | %s |\n", mid == Middle::None ? "" : "+topk", median(t),
                  mid == Middle::None ? "32 ops, one CUDA graph" : "32 ops and a TopK with a constant k (400), one CUDA graph");
    }
    for (int varying = 0; varying < 2; ++varying) {
      Bench b(chain_model(Middle::TopKData));
      b.set(0, x.data(), x.size() * 4);
      std::vector<double> t;
      for (int i = 0; i < iters + 10; ++i) {
        const int64_t k = varying ? 300 + (i % 200) : 400;
        b.set(1, &k, 8);
        t.push_back(b.call_us());
      }
      t.erase(t.begin(), t.begin() + 10);
      std::printf("| chain+%s | %.1f | %s |\n", varying ? "new size" : "size", median(t),
                  varying ? "two segments, the second prepared and run eagerly per call"
                          : "two captured segments, one read-back of k");
    }
    {
      Bench b(nms_model());
      std::vector<std::vector<float>> boxes(16, std::vector<float>(4000)), scores(16, std::vector<float>(80000));
      std::uniform_real_distribution<float> pos(0.f, 800.f), size(8.f, 120.f), u(0.f, 1.f);
      for (int s = 0; s < 16; ++s) {
        for (int i = 0; i < 1000; ++i) {
          const float y = pos(rng), xx = pos(rng);
          boxes[s][i * 4 + 0] = y, boxes[s][i * 4 + 1] = xx, boxes[s][i * 4 + 2] = y + size(rng), boxes[s][i * 4 + 3] = xx + size(rng);
        }
        for (auto& v : scores[s]) v = u(rng) * u(rng) * u(rng);
      }
      for (int varying = 0; varying < 2; ++varying) {
        std::vector<double> t;
        for (int i = 0; i < iters + 10; ++i) {
          const int s = varying ? i % 16 : 0;
          b.set(0, boxes[s].data(), 16000);
          b.set(1, scores[s].data(), 320000);
          t.push_back(b.call_us());
        }
        t.erase(t.begin(), t.begin() + 10);
        std::printf("| nms 80x1000%s | %.1f | NMS + Gather of the kept boxes%s |\n", varying ? " varying" : "", median(t),
                    varying ? ", 16 inputs in turn (16 counts, cached segments)" : ", one input");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
