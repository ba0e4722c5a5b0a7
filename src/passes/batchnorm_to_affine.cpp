// convert_to_nhwc step 2: BatchNormalization on NCHW (inference) as Mul/Add with [C, 1, 1]
// constants, which sink like any element-wise op; the CBlock BNs are folded into their convs
// before this runs.
#include "passes/layout_nhwc.h"
#include "passes/match_util.h"

namespace unirt {

int batchnorm_to_affine(Graph& g) {
  int fired = 0;
  const size_t original = g.nodes.size();
  for (size_t i = 0; i < original; ++i) {
    const Node bn = g.nodes[i];
    const auto bn_map = batchnorm_affine(g, bn);
    if (!bn_map || !g.value(bn.inputs[0]).has_shape || g.value(bn.inputs[0]).shape.size() != 4) continue;
    const DType xtype = g.value(bn.inputs[0]).dtype;
    const int64_t c = static_cast<int64_t>(bn_map->scale.size());
    const int sv = g.add_constant(g.unique_name(bn.name + "/scale"), TensorData::from_float(bn_map->scale, {c, 1, 1}));
    const int tv = g.add_constant(g.unique_name(bn.name + "/shift"), TensorData::from_float(bn_map->shift, {c, 1, 1}));
    const int mid = g.add_value(g.unique_name(bn.name + "/scaled"), xtype);
    Node mul, add;
    mul.name = g.unique_name(bn.name + "/mul");
    mul.op_type = "Mul";
    mul.inputs = {bn.inputs[0], sv};
    mul.outputs = {mid};
    add.name = g.unique_name(bn.name + "/add");
    add.op_type = "Add";
    add.inputs = {mid, tv};
    add.outputs = {bn.outputs[0]};
    add.notes.push_back("BatchNormalization '" + bn.name + "' as a per-channel affine map");
    g.nodes[i].op_type.clear();
    g.add_node(std::move(mul));
    g.add_node(std::move(add));
    ++fired;
  }
  g.relink();
  return fired;
}

}  // namespace unirt
