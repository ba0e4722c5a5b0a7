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
    // Constant nodes become initializers at import: no kernel is needed for them.
    const KernelInfo import_time{"any", "folded into an initializer at import"};
    struct Row {
      std::string op, kind;
      const KernelInfo *cpu, *cuda;
    };
    std::vector<Row> rows;
    for (const auto& op : supported_onnx_ops()) {
      const bool constant = op == "Constant";
      rows.push_back({op, "onnx", constant ? &import_time : cpu.info(op), constant ? &import_time : cuda.info(op)});
    }
    for (const auto& op : fused_ops()) rows.push_back({op, "fused", cpu.info(op), cuda.info(op)});
    auto coverage = [](const KernelInfo* k) -> nlohmann::json {
      if (!k) return false;
      return {{"types", k->types}, {"layouts", k->layouts}};
    };
    if (*json) {
      nlohmann::json all = nlohmann::json::array();
      for (const auto& row : rows)
        all.push_back({{"op", row.op}, {"kind", row.kind}, {"cpu", coverage(row.cpu)},
                       {"cuda", cuda_built ? coverage(row.cuda) : nlohmann::json()}});
      std::printf("%s\n", all.dump(1).c_str());
      return 0;
    }
    std::printf("%-20s %-6s %-50s %s\n", "op", "kind", "cpu types", "cuda types");
    int n_cpu = 0, n_cuda = 0;
    for (const auto& row : rows) {
      const std::string c = row.cpu ? row.cpu->types : "-";
      const std::string g = !cuda_built ? "n/a (no CUDA backend in this build)" : row.cuda ? row.cuda->types : "-";
      std::printf("%-20s %-6s %-50s %s\n", row.op.c_str(), row.kind.c_str(), c.c_str(), g.c_str());
      // Layouts only where a backend restricts them; both when they differ.
      const std::string lc = row.cpu ? row.cpu->layouts : "", lg = cuda_built && row.cuda ? row.cuda->layouts : "";
      if (!lc.empty() && lc == lg) std::printf("%28s layouts: %s\n", "", lc.c_str());
      else {
        if (!lc.empty()) std::printf("%28s cpu layouts: %s\n", "", lc.c_str());
        if (!lg.empty()) std::printf("%28s cuda layouts: %s\n", "", lg.c_str());
      }
      n_cpu += row.cpu != nullptr, n_cuda += row.cuda != nullptr;
    }
    std::printf("\n%zu ops: %d with a CPU kernel, ", rows.size(), n_cpu);
    if (cuda_built) std::printf("%d with a CUDA kernel (a CUDA engine whose graph still holds one of the others after the passes is refused, naming the node)\n", n_cuda);
    else std::printf("CUDA: this build has no CUDA backend\n");
    std::printf("types: of the data operands (\"any\": moved as bytes whatever the type); from each kernel's registration\n");
    return 0;
  };
}

}  // namespace unirt::cli
