// unirt.Linear -> Gelu (exact) -> the Linear's activation = "gelu": the GEMM applies it while
// writing, so the 4x-wide MLP activation is written once.
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {

int fuse_linear_gelu(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  for (auto& lin : g.nodes) {
    if (lin.op_type != "unirt.Linear" || lin.has_attr("activation") || lin.has_input(3)) continue;
    const int gi = sole_consumer(g, cons, lin.outputs[0]);
    if (gi < 0 || g.nodes[gi].op_type != "Gelu" || g.nodes[gi].attr_s("approximate", "none") != "none") continue;
    Node& gelu = g.nodes[gi];
    lin.attrs["activation"] = std::string("gelu");
    lin.outputs[0] = gelu.outputs[0];
    lin.notes.push_back("Gelu '" + gelu.name + "' in its epilogue");
    gelu.op_type.clear();
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace unirt
