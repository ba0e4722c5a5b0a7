// unirt ops [--json]: every op unirt accepts (the ONNX op table and the unirt. ops the passes
// create) with the backends that have a kernel for it, read from the op table and the kernel
// registries, so it cannot drift from the code.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "onnx/importer.h"

namespace unirt::cli {

void add_ops_command(CLI::App& app, Registry& r) {
  auto json = std::make_shared<bool>(false);
  auto* c = app.add_subcommand("ops", "the ops unirt accepts and the backends with a kernel for each");
  c->add_flag("--json", *json, "one JSON object per op instead of a table");
  r.actions[c] = [json] {
    const KernelRegistry& cpu = KernelRegistry::get("cpu");
    const KernelRegistry& cuda = KernelRegistry::get("cuda");
    const bool cuda_built = !cuda.ops().empty();
    struct Row {
      std::string op, kind;
      bool cpu, cuda;
    };
    std::vector<Row> rows;
    // Constant nodes become initializers at import: no kernel is needed for them.
    for (const auto& op : supported_onnx_ops())
      rows.push_back({op, "onnx", op == "Constant" || cpu.find(op), op == "Constant" || cuda.find(op)});
    for (const auto& op : fused_ops()) rows.push_back({op, "fused", cpu.find(op) != nullptr, cuda.find(op) != nullptr});
    if (*json) {
      nlohmann::json all = nlohmann::json::array();
      for (const auto& row : rows)
        all.push_back({{"op", row.op}, {"kind", row.kind}, {"cpu", row.cpu}, {"cuda", cuda_built ? nlohmann::json(row.cuda) : nlohmann::json()}});
      std::printf("%s\n", all.dump(1).c_str());
      return 0;
    }
    std::printf("%-24s %-6s %-4s %s\n", "op", "kind", "cpu", "cuda");
    int n_cpu = 0, n_cuda = 0;
    for (const auto& row : rows) {
      std::printf("%-24s %-6s %-4s %s\n", row.op.c_str(), row.kind.c_str(), row.cpu ? "yes" : "-",
                  cuda_built ? (row.cuda ? "yes" : "-") : "n/a");
      n_cpu += row.cpu, n_cuda += row.cuda;
    }
    std::printf("\n%zu ops: %d with a CPU kernel, ", rows.size(), n_cpu);
    if (cuda_built) std::printf("%d with a CUDA kernel (a CUDA engine whose graph still holds one of the others after the passes is refused, naming the node)\n", n_cuda);
    else std::printf("CUDA: this build has no CUDA backend\n");
    std::printf("CPU kernels run float32; CUDA kernels run float32 and float16 (types per kernel: docs/kernels.md).\n");
    return 0;
  };
}

}  // namespace unirt::cli
