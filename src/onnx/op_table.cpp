// One entry per ONNX op unirt accepts: its input/output counts and the attributes it understands.
// An attribute outside the list is an error rather than something silently ignored.
#include <algorithm>
#include <map>
#include <set>

#include "onnx/importer.h"

namespace unirt {
namespace {

struct OpSpec {
  int min_inputs, max_inputs;
  int min_outputs, max_outputs;
  std::set<std::string> attrs;
};

const std::map<std::string, OpSpec>& op_table() {
  static const std::map<std::string, OpSpec> t = {
      {"Abs", {1, 1, 1, 1, {}}},
      {"Add", {2, 2, 1, 1, {}}},
      {"ArgMax", {1, 1, 1, 1, {"axis", "keepdims", "select_last_index"}}},
      {"ArgMin", {1, 1, 1, 1, {"axis", "keepdims", "select_last_index"}}},
      {"And", {2, 2, 1, 1, {}}},
      {"AveragePool", {1, 1, 1, 1, {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides", "dilations"}}},
      {"BatchNormalization", {5, 5, 1, 1, {"epsilon", "momentum", "training_mode", "spatial"}}},
      {"Cast", {1, 1, 1, 1, {"to", "saturate"}}},
      {"Ceil", {1, 1, 1, 1, {}}},
      {"Clip", {1, 3, 1, 1, {"min", "max"}}},
      {"Concat", {1, 1 << 20, 1, 1, {"axis"}}},
      {"Constant", {0, 0, 1, 1, {"value", "value_float", "value_floats", "value_int", "value_ints"}}},
      {"ConstantOfShape", {1, 1, 1, 1, {"value"}}},
      {"Conv", {2, 3, 1, 1, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}}},
      {"ConvTranspose", {2, 3, 1, 1, {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides"}}},
      {"DequantizeLinear", {2, 3, 1, 1, {"axis", "block_size", "output_dtype"}}},
      {"Div", {2, 2, 1, 1, {}}},
      {"Dropout", {1, 3, 1, 2, {"seed", "ratio"}}},
      {"Equal", {2, 2, 1, 1, {}}},
      {"Erf", {1, 1, 1, 1, {}}},
      {"Exp", {1, 1, 1, 1, {}}},
      {"Expand", {2, 2, 1, 1, {}}},
      {"Flatten", {1, 1, 1, 1, {"axis"}}},
      {"Floor", {1, 1, 1, 1, {}}},
      {"Gather", {2, 2, 1, 1, {"axis"}}},
      {"GatherElements", {2, 2, 1, 1, {"axis"}}},
      {"Gelu", {1, 1, 1, 1, {"approximate"}}},
      {"Gemm", {2, 3, 1, 1, {"alpha", "beta", "transA", "transB"}}},
      {"GlobalAveragePool", {1, 1, 1, 1, {}}},
      {"Greater", {2, 2, 1, 1, {}}},
      {"GreaterOrEqual", {2, 2, 1, 1, {}}},
      {"Identity", {1, 1, 1, 1, {}}},
      {"LayerNormalization", {2, 3, 1, 3, {"axis", "epsilon", "stash_type"}}},
      {"Less", {2, 2, 1, 1, {}}},
      {"LessOrEqual", {2, 2, 1, 1, {}}},
      {"Log", {1, 1, 1, 1, {}}},
      {"MatMul", {2, 2, 1, 1, {}}},
      {"Max", {1, 1 << 20, 1, 1, {}}},
      {"MaxPool", {1, 1, 1, 1, {"auto_pad", "ceil_mode", "kernel_shape", "pads", "strides", "dilations", "storage_order"}}},
      {"Min", {1, 1 << 20, 1, 1, {}}},
      {"Mod", {2, 2, 1, 1, {"fmod"}}},
      {"Mul", {2, 2, 1, 1, {}}},
      {"Neg", {1, 1, 1, 1, {}}},
      {"NonMaxSuppression", {2, 5, 1, 1, {"center_point_box"}}},
      {"NonZero", {1, 1, 1, 1, {}}},
      {"Not", {1, 1, 1, 1, {}}},
      {"Or", {2, 2, 1, 1, {}}},
      {"Pad", {1, 4, 1, 1, {"mode", "pads", "value"}}},
      {"Pow", {2, 2, 1, 1, {}}},
      {"QuantizeLinear", {2, 3, 1, 1, {"axis", "block_size", "output_dtype", "saturate"}}},
      {"Range", {3, 3, 1, 1, {}}},
      {"Reciprocal", {1, 1, 1, 1, {}}},
      {"ReduceMax", {1, 2, 1, 1, {"axes", "keepdims", "noop_with_empty_axes"}}},
      {"ReduceMean", {1, 2, 1, 1, {"axes", "keepdims", "noop_with_empty_axes"}}},
      {"ReduceMin", {1, 2, 1, 1, {"axes", "keepdims", "noop_with_empty_axes"}}},
      {"ReduceProd", {1, 2, 1, 1, {"axes", "keepdims", "noop_with_empty_axes"}}},
      {"ReduceSum", {1, 2, 1, 1, {"axes", "keepdims", "noop_with_empty_axes"}}},
      {"Relu", {1, 1, 1, 1, {}}},
      {"Reshape", {2, 2, 1, 1, {"allowzero"}}},
      {"Resize", {1, 4, 1, 1, {"antialias", "axes", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside", "extrapolation_value", "keep_aspect_ratio_policy", "mode", "nearest_mode"}}},
      {"RoiAlign", {3, 3, 1, 1, {"coordinate_transformation_mode", "mode", "output_height", "output_width", "sampling_ratio", "spatial_scale"}}},
      {"Shape", {1, 1, 1, 1, {"start", "end"}}},
      {"ScatterElements", {3, 3, 1, 1, {"axis", "reduction"}}},
      {"ScatterND", {3, 3, 1, 1, {"reduction"}}},
      {"Sigmoid", {1, 1, 1, 1, {}}},
      {"Size", {1, 1, 1, 1, {}}},
      {"Slice", {1, 5, 1, 1, {"starts", "ends", "axes"}}},  // attrs: opset < 10
      {"Softmax", {1, 1, 1, 1, {"axis"}}},
      {"Split", {1, 2, 1, 1 << 20, {"axis", "split", "num_outputs"}}},
      {"Sqrt", {1, 1, 1, 1, {}}},
      {"Squeeze", {1, 2, 1, 1, {"axes"}}},
      {"Sub", {2, 2, 1, 1, {}}},
      {"Tanh", {1, 1, 1, 1, {}}},
      {"Tile", {2, 2, 1, 1, {}}},
      {"TopK", {1, 2, 2, 2, {"axis", "largest", "sorted", "k"}}},
      {"Transpose", {1, 1, 1, 1, {"perm"}}},
      {"Unsqueeze", {1, 2, 1, 1, {"axes"}}},
      {"Where", {3, 3, 1, 1, {}}},
      {"Xor", {2, 2, 1, 1, {}}},
  };
  return t;
}

// Made by the passes (see docs/ARCHITECTURE.md): optional inputs are -1 where omitted.
const std::map<std::string, OpSpec>& fused_op_table() {
  static const std::map<std::string, OpSpec> t = {
      {"unirt.Attention", {1, 1, 1, 1, {"num_heads", "head_dim", "scale", "q_scale", "q_dtype"}}},
      {"unirt.BoxDecode", {2, 3, 1, 1, {"stds", "max_ratio"}}},
      {"unirt.MultiLevelTopK", {4, 32, 3, 17, {}}},
      {"unirt.ConvNHWC", {2, 4, 1, 2, {"kernel_shape", "strides", "pads", "group", "input_layout", "q_scale", "q_dtype"}}},
      {"unirt.Linear", {2, 4, 1, 1, {"activation"}}},
      {"unirt.Mlp", {2, 6, 1, 1, {"activation"}}},
      {"unirt.QuantizedLinear", {3, 5, 1, 2, {"activation", "out_scale", "output_dtype", "q_scale"}}},  // X, W, alpha, bias, residual
      {"unirt.QuantizedMlp", {6, 8, 1, 1, {"hidden_scale", "output_dtype"}}},  // X, W1, alpha1, bias1, W2, alpha2, bias2, residual
      {"unirt.LayerNormQuantize", {2, 3, 1, 1, {"epsilon", "y_scale", "output_dtype"}}},
      {"unirt.MultiLevelRoiAlign", {4, 3 + 16, 1, 1, {"output_height", "output_width", "sampling_ratio", "coordinate_transformation_mode",
                                                     "spatial_scales", "levels", "feature_layout", "output_layout"}}},  // X, W1, b1, W2, b2, residual: W2 is checked by its shape function
  };
  return t;
}

}  // namespace

std::vector<std::string> fused_ops() {
  std::vector<std::string> v;
  for (const auto& kv : fused_op_table()) v.push_back(kv.first);
  return v;
}

std::vector<std::string> supported_onnx_ops() {
  std::vector<std::string> v;
  for (const auto& kv : op_table()) v.push_back(kv.first);
  return v;
}

void check_node_supported(const Node& node, int64_t opset, bool fused_ok) {
  const auto& t = op_table();
  auto it = t.find(node.op_type);
  if (fused_ok && it == t.end()) {
    it = fused_op_table().find(node.op_type);
    if (it == fused_op_table().end()) it = t.end();
  }
  if (!node.domain.empty() && node.domain != "ai.onnx")
    throw Error("unsupported op '" + node.op_type + "' (domain '" + node.domain + "') at node '" + node.name +
                "': unirt supports the default ONNX domain only");
  if (it == t.end()) {
    std::string all;
    for (const auto& kv : t) all += (all.empty() ? "" : ", ") + kv.first;
    throw Error("unsupported op '" + node.op_type + "' at node '" + node.name + "' (opset " + std::to_string(opset) +
                "); unirt supports: " + all);
  }
  const OpSpec& s = it->second;
  // Attribute values whose semantics unirt does not implement.
  if (node.op_type == "BatchNormalization" && node.attr_i("training_mode", 0) != 0)
    throw Error(node.describe() + ": training_mode=1 is not supported (inference engine)");
  if ((node.op_type == "Conv" || node.op_type == "AveragePool" || node.op_type == "MaxPool")) {
    const std::string ap = node.attr_s("auto_pad", "NOTSET");
    if (ap != "NOTSET" && ap != "VALID" && ap != "SAME_UPPER" && ap != "SAME_LOWER")
      throw Error(node.describe() + ": auto_pad '" + ap + "' is not an ONNX value");
  }
  if (node.op_type == "MaxPool" && node.outputs.size() > 1 && node.outputs[1] >= 0)
    throw Error(node.describe() + ": the Indices output of MaxPool is not supported");
  if (node.op_type == "Pad") {
    const std::string m = node.attr_s("mode", "constant");
    if (m != "constant" && m != "reflect" && m != "edge")
      throw Error(node.describe() + ": Pad mode '" + m + "' is not supported (constant, reflect, edge)");
  }
  if (node.op_type == "ScatterElements" || node.op_type == "ScatterND") {
    const std::string r = node.attr_s("reduction", "none");
    if (r != "none" && r != "add" && r != "mul" && r != "max" && r != "min")
      throw Error(node.describe() + ": reduction '" + r + "' is not an ONNX value (none, add, mul, max, min)");
  }
  if (node.op_type == "ConvTranspose") {
    const std::string ap = node.attr_s("auto_pad", "NOTSET");
    if (ap != "NOTSET" && ap != "VALID" && ap != "SAME_UPPER" && ap != "SAME_LOWER")
      throw Error(node.describe() + ": auto_pad '" + ap + "' is not an ONNX value");
  }
  if (node.op_type == "Resize") {
    const std::string mode = node.attr_s("mode", "nearest");
    if (mode != "nearest" && mode != "linear")
      throw Error(node.describe() + ": Resize mode '" + mode + "' is not supported (nearest, linear)");
    const std::string ct = node.attr_s("coordinate_transformation_mode", "half_pixel");
    if (ct != "half_pixel" && ct != "asymmetric" && ct != "align_corners" && ct != "pytorch_half_pixel")
      throw Error(node.describe() + ": coordinate_transformation_mode '" + ct +
                  "' is not supported (half_pixel, pytorch_half_pixel, asymmetric, align_corners)");
    const std::string nm = node.attr_s("nearest_mode", "round_prefer_floor");
    if (nm != "round_prefer_floor" && nm != "round_prefer_ceil" && nm != "floor" && nm != "ceil")
      throw Error(node.describe() + ": nearest_mode '" + nm + "' is not an ONNX value");
    if (node.attr_i("antialias", 0) != 0) throw Error(node.describe() + ": antialias=1 is not supported");
    if (node.attr_i("exclude_outside", 0) != 0) throw Error(node.describe() + ": exclude_outside=1 is not supported");
    if (node.attrs.count("axes")) throw Error(node.describe() + ": the axes attribute is not supported (scales/sizes for every axis)");
    if (node.attr_s("keep_aspect_ratio_policy", "stretch") != "stretch")
      throw Error(node.describe() + ": keep_aspect_ratio_policy other than 'stretch' is not supported");
  }
  if (node.op_type == "RoiAlign") {
    const std::string mode = node.attr_s("mode", "avg");
    if (mode != "avg") throw Error(node.describe() + ": RoiAlign mode '" + mode + "' is not supported (avg)");
    const std::string ct = node.attr_s("coordinate_transformation_mode", "half_pixel");
    if (ct != "half_pixel" && ct != "output_half_pixel")
      throw Error(node.describe() + ": coordinate_transformation_mode '" + ct + "' is not an ONNX value (half_pixel, output_half_pixel)");
  }
  if (node.op_type == "Dropout" && node.has_input(2))
    throw Error(node.describe() + ": the training_mode input is not supported (inference engine)");
  const int nin = node.num_inputs();
  if (nin < s.min_inputs || nin > s.max_inputs)
    throw Error(node.describe() + ": has " + std::to_string(nin) + " inputs, expected " +
                std::to_string(s.min_inputs) + (s.max_inputs == s.min_inputs ? "" : ".." + std::to_string(s.max_inputs)));
  for (int i = 0; i < s.min_inputs; ++i)
    if (!node.has_input(i)) throw Error(node.describe() + ": required input " + std::to_string(i) + " is missing");
  const int nout = static_cast<int>(node.outputs.size());
  if (nout < s.min_outputs || nout > s.max_outputs)
    throw Error(node.describe() + ": has " + std::to_string(nout) + " outputs, expected " + std::to_string(s.min_outputs) +
                ".." + std::to_string(s.max_outputs));
  for (int i = 0; i < s.min_outputs && node.op_type != "Constant"; ++i)  // a Constant's output becomes an initializer
    if (node.outputs[i] < 0) throw Error(node.describe() + ": required output " + std::to_string(i) + " is missing");
  for (const auto& kv : node.attrs)
    if (!s.attrs.count(kv.first))
      throw Error(node.describe() + ": attribute '" + kv.first + "' is not supported by unirt");
}

}  // namespace unirt
