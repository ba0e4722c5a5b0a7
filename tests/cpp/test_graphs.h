// Small hand-built graphs and ONNX models shared by the unit tests.
#pragma once
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backend/float8_rule.h"
#include "ir/graph.h"
#include "onnx.pb.h"

namespace unirt::testing {

// An ONNX node proto with int/ints attributes.
inline onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in,
                                 std::vector<std::string> out, const std::string& name = "") {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name.empty() ? op + "_" + std::to_string(g->node_size()) : name);
  for (auto& s : in) n->add_input(s);
  for (auto& s : out) n->add_output(s);
  return n;
}

inline void add_ints(onnx::NodeProto* n, const std::string& k, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

inline void add_int(onnx::NodeProto* n, const std::string& k, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

inline void add_float(onnx::NodeProto* n, const std::string& k, float v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

inline void add_init(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims, std::vector<float> v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (auto d : dims) t->add_dims(d);
  for (auto x : v) t->add_float_data(x);
}

inline void add_init_i64(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(v.size()));
  for (auto x : v) t->add_int64_data(x);
}

// Graph input with dims given as ints (>= 0) or names (dim_param).
inline void add_input(onnx::GraphProto* g, const std::string& name, std::vector<std::string> dims) {
  auto* in = g->add_input();
  in->set_name(name);
  auto* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (auto& d : dims) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0]))) dim->set_dim_value(std::stoll(d));
    else dim->set_dim_param(d);
  }
}

inline void add_scalar_i64(onnx::GraphProto* g, const std::string& name, int64_t v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_int64_data(v);
}

// Multi-head attention as PyTorch exports it from a packed projection: x = qkv [b, n, 3*h*d] ->
// reshape [b, n, 3, h, d] -> permute(2, 0, 3, 1, 4) -> q, k, v -> softmax(q k^T * d^-0.5) v ->
// transpose(1, 2) -> reshape [b, n, h*d].
inline onnx::ModelProto attention_model(int64_t heads, int64_t hd, const std::string& tokens) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", tokens, std::to_string(3 * heads * hd)});
  add_init_i64(g, "split", {0, 0, 3, heads, hd});
  add_init_i64(g, "merge", {0, 0, heads * hd});
  add_scalar_i64(g, "i0", 0);
  add_scalar_i64(g, "i1", 1);
  add_scalar_i64(g, "i2", 2);
  add_init(g, "scale", {}, {1.f / std::sqrt(static_cast<float>(hd))});
  add_node(g, "Reshape", {"x", "split"}, {"r"});
  add_ints(add_node(g, "Transpose", {"r"}, {"t"}), "perm", {2, 0, 3, 1, 4});
  add_int(add_node(g, "Gather", {"t", "i0"}, {"q"}), "axis", 0);
  add_int(add_node(g, "Gather", {"t", "i1"}, {"k"}), "axis", 0);
  add_int(add_node(g, "Gather", {"t", "i2"}, {"v"}), "axis", 0);
  add_ints(add_node(g, "Transpose", {"k"}, {"kt"}), "perm", {0, 1, 3, 2});
  add_node(g, "MatMul", {"q", "kt"}, {"s"});
  add_node(g, "Mul", {"s", "scale"}, {"ss"});
  add_int(add_node(g, "Softmax", {"ss"}, {"p"}), "axis", -1);
  add_node(g, "MatMul", {"p", "v"}, {"o"});
  add_ints(add_node(g, "Transpose", {"o"}, {"ot"}), "perm", {0, 2, 1, 3});
  add_node(g, "Reshape", {"ot", "merge"}, {"y"});
  g->add_output()->set_name("y");
  return m;
}

// A model that names no opset gets `opset`.
inline std::string model_bytes(onnx::ModelProto& m, int opset = 17) {
  m.set_ir_version(8);
  if (m.opset_import_size() == 0) {
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
  }
  return m.SerializeAsString();
}

// x[N,C,H,W] -> depthwise 3x3 conv -> pad right/bottom to a multiple of 7 via Shape arithmetic -> y.
// The exporter-style pad subgraph is what TensorRT could not resolve; unirt must keep it symbolic.
inline onnx::ModelProto window_pad_model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  g->set_name("window_pad");
  add_input(g, "x", {"batch", "4", "height", "width"});
  std::vector<float> w(4 * 9, 0.1f);
  add_init(g, "w", {4, 1, 3, 3}, w);
  auto* conv = add_node(g, "Conv", {"x", "w"}, {"c"}, "dwconv");
  add_int(conv, "group", 4);
  add_ints(conv, "pads", {1, 1, 1, 1});
  add_node(g, "Shape", {"c"}, {"s"}, "shape");
  add_init_i64(g, "i2", {2});
  add_init_i64(g, "i3", {3});
  auto* gh = add_node(g, "Gather", {"s", "i2"}, {"h"}, "gather_h");
  add_int(gh, "axis", 0);
  auto* gw = add_node(g, "Gather", {"s", "i3"}, {"w_"}, "gather_w");
  add_int(gw, "axis", 0);
  add_init_i64(g, "seven", {7});
  add_node(g, "Mod", {"h", "seven"}, {"hm"}, "hmod");
  add_node(g, "Sub", {"seven", "hm"}, {"hp0"}, "hsub");
  add_node(g, "Mod", {"hp0", "seven"}, {"hp"}, "hmod2");
  add_node(g, "Mod", {"w_", "seven"}, {"wm"}, "wmod");
  add_node(g, "Sub", {"seven", "wm"}, {"wp0"}, "wsub");
  add_node(g, "Mod", {"wp0", "seven"}, {"wp"}, "wmod2");
  add_init_i64(g, "zeros4", {0, 0, 0, 0});
  add_init_i64(g, "zeros2", {0, 0});
  add_node(g, "Concat", {"zeros4", "zeros2", "hp", "wp"}, {"pads"}, "concat_pads");
  g->mutable_node(g->node_size() - 1)->add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("axis");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(0);
    return a;
  }());
  add_node(g, "Pad", {"c", "pads"}, {"y"}, "pad");
  g->add_output()->set_name("y");
  return m;
}

inline std::vector<float> randn(size_t n, float sd, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

inline void add_conv(onnx::GraphProto* g, const std::string& x, const std::string& y, int64_t cin, int64_t cout, int64_t k, int64_t group,
          int64_t stride, uint32_t seed) {
  add_init(g, y + "_w", {cout, cin / group, k, k}, randn(cout * (cin / group) * k * k, 0.3f, seed));
  add_init(g, y + "_b", {cout}, randn(cout, 0.1f, seed + 1));
  auto* n = add_node(g, "Conv", {x, y + "_w", y + "_b"}, {y}, y);
  add_int(n, "group", group);
  add_ints(n, "strides", {stride, stride});
  const int64_t p = stride == 1 ? k / 2 : 0;
  add_ints(n, "pads", {p, p, p, p});
}

// Transformer-style MLP on tokens x [b, n, c]: y = x + (GELU(x W1 + b1) W2 + b2), the Gelu in its
// Erf decomposition as exporters write it.
inline onnx::ModelProto mlp_model(int64_t c, int64_t hidden) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "n", std::to_string(c)});
  add_init(g, "w1", {c, hidden}, randn(c * hidden, 1.f / std::sqrt(static_cast<float>(c)), 21));
  add_init(g, "b1", {hidden}, randn(hidden, 0.1f, 22));
  add_init(g, "w2", {hidden, c}, randn(hidden * c, 0.5f / std::sqrt(static_cast<float>(hidden)), 23));
  add_init(g, "b2", {c}, randn(c, 0.1f, 24));
  add_init(g, "sqrt2", {}, {1.4142135f});
  add_init(g, "one", {}, {1.f});
  add_init(g, "half", {}, {0.5f});
  add_node(g, "MatMul", {"x", "w1"}, {"h0"});
  add_node(g, "Add", {"h0", "b1"}, {"h"});
  add_node(g, "Div", {"h", "sqrt2"}, {"d"});
  add_node(g, "Erf", {"d"}, {"e"});
  add_node(g, "Add", {"e", "one"}, {"a"});
  add_node(g, "Mul", {"h", "a"}, {"hm"});
  add_node(g, "Mul", {"hm", "half"}, {"act"});
  add_node(g, "MatMul", {"act", "w2"}, {"o0"});
  add_node(g, "Add", {"o0", "b2"}, {"o"});
  add_node(g, "Add", {"x", "o"}, {"y"});
  g->add_output()->set_name("y");
  return m;
}

// x[b,8,h,w] -> patch conv 2x2/2 -> CBlock (pos dw3x3 + residual, BN -> 1x1 -> dw5x5 -> 1x1 +
// residual, BN -> 1x1 -> Gelu -> 1x1 + residual) -> flatten(2).transpose(1, 2) -> tokens y[b, n, 16].
inline onnx::ModelProto cblock_model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "8", "h", "w"});
  add_conv(g, "x", "p", 8, 16, 2, 1, 2, 1);
  add_conv(g, "p", "pos", 16, 16, 3, 16, 1, 3);
  add_node(g, "Add", {"p", "pos"}, {"x1"});
  add_init(g, "gamma", {16}, randn(16, 0.2f, 5));
  for (int i = 0; i < 16; ++i) g->mutable_initializer(g->initializer_size() - 1)->set_float_data(i, 1.f + 0.1f * (i % 3));
  add_init(g, "beta", {16}, randn(16, 0.2f, 6));
  add_init(g, "mean", {16}, randn(16, 0.2f, 7));
  add_init(g, "var", {16}, std::vector<float>(16, 1.5f));
  add_node(g, "BatchNormalization", {"x1", "gamma", "beta", "mean", "var"}, {"n1"});
  add_conv(g, "n1", "c1", 16, 16, 1, 1, 1, 9);
  add_conv(g, "c1", "dw", 16, 16, 5, 16, 1, 11);
  add_conv(g, "dw", "c2", 16, 16, 1, 1, 1, 13);
  add_node(g, "Add", {"x1", "c2"}, {"x2"});
  add_conv(g, "x2", "fc1", 16, 32, 1, 1, 1, 15);
  add_node(g, "Gelu", {"fc1"}, {"act"});
  add_conv(g, "act", "fc2", 32, 16, 1, 1, 1, 17);
  add_node(g, "Add", {"x2", "fc2"}, {"x3"});
  add_node(g, "Shape", {"x3"}, {"s"});
  add_init_i64(g, "i01", {0, 1});
  add_int(add_node(g, "Gather", {"s", "i01"}, {"bc"}), "axis", 0);
  add_init_i64(g, "m1", {-1});
  add_int(add_node(g, "Concat", {"bc", "m1"}, {"target"}), "axis", 0);
  add_node(g, "Reshape", {"x3", "target"}, {"flat"});
  add_ints(add_node(g, "Transpose", {"flat"}, {"y"}), "perm", {0, 2, 1});
  g->add_output()->set_name("y");
  return m;
}


// A patch embedding as UniFormer's stem writes it: Conv 4x4 / 4 (64 channels, bias zeros) ->
// NHWC Transpose -> LayerNormalization (scale ones, bias zeros: equal to the conv bias, so CSE
// makes them one constant). Input a [batch, 3, h, w].
inline onnx::ModelProto patch_embed_model(const std::vector<float>& w) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"batch", "3", "h", "w"});
  add_init(g, "w", {64, 3, 4, 4}, w);
  add_init(g, "bias", {64}, std::vector<float>(64, 0.f));
  add_init(g, "gamma", {64}, std::vector<float>(64, 1.f));
  add_init(g, "beta", {64}, std::vector<float>(64, 0.f));
  auto* conv = add_node(g, "Conv", {"a", "w", "bias"}, {"c"});
  add_ints(conv, "kernel_shape", {4, 4});
  add_ints(conv, "strides", {4, 4});
  add_ints(add_node(g, "Transpose", {"c"}, {"t"}), "perm", {0, 2, 3, 1});
  add_int(add_node(g, "LayerNormalization", {"t", "gamma", "beta"}, {"y"}), "axis", -1);
  g->add_output()->set_name("y");
  return m;
}

// Box decoding as torch.onnx.export writes unirt_models' delta2bbox: inputs rois [b, n, r, 4]
// (r = 1 broadcasts over c), deltas [b, n, c, 4] and, with a bound, bound [2] = (max x, max y).
// `half` is the centre/half-size constant (0.5 in the real formula).
inline onnx::ModelProto box_decode_model(bool with_bound, bool broadcast_rois, float half = 0.5f) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "rois", {"b", "n", broadcast_rois ? "1" : "c", "4"});
  add_input(g, "deltas", {"b", "n", "c", "4"});
  if (with_bound) add_input(g, "bound", {"2"});
  add_init(g, "stds", {4}, {0.1f, 0.1f, 0.2f, 0.2f});
  add_init_i64(g, "s0", {0});
  add_init_i64(g, "s2", {2});
  add_init_i64(g, "smax", {9223372036854775807LL});
  add_init_i64(g, "ax", {-1});
  add_init(g, "half", {}, {half});
  add_init(g, "rlo", {}, {-4.135166556742356f});
  add_init(g, "rhi", {}, {4.135166556742356f});
  add_init(g, "zero", {}, {0.f});
  add_node(g, "Mul", {"deltas", "stds"}, {"d"});
  add_node(g, "Slice", {"d", "s0", "s2", "ax"}, {"dxy"});
  add_node(g, "Slice", {"d", "s2", "smax", "ax"}, {"dwh_raw"});
  add_node(g, "Clip", {"dwh_raw", "rlo", "rhi"}, {"dwh"});
  add_node(g, "Slice", {"rois", "s0", "s2", "ax"}, {"r_lo"});
  add_node(g, "Slice", {"rois", "s2", "smax", "ax"}, {"r_hi"});
  add_node(g, "Add", {"r_lo", "r_hi"}, {"csum"});
  add_node(g, "Mul", {"csum", "half"}, {"centre"});
  add_node(g, "Sub", {"r_hi", "r_lo"}, {"size"});
  add_node(g, "Mul", {"size", "dxy"}, {"shift"});
  add_node(g, "Add", {"centre", "shift"}, {"xy"});
  add_node(g, "Exp", {"dwh"}, {"e"});
  add_node(g, "Mul", {"size", "e"}, {"wh"});
  add_node(g, "Mul", {"wh", "half"}, {"hwh"});
  add_node(g, "Sub", {"xy", "hwh"}, {"lo0"});
  add_node(g, "Add", {"xy", "hwh"}, {"hi0"});
  add_node(g, "Clip", {"lo0", "zero", ""}, {with_bound ? "lo1" : "lo"});
  add_node(g, "Clip", {"hi0", "zero", ""}, {with_bound ? "hi1" : "hi"});
  if (with_bound) {
    add_node(g, "Min", {"lo1", "bound"}, {"lo"});
    add_node(g, "Min", {"hi1", "bound"}, {"hi"});
  }
  add_int(add_node(g, "Concat", {"lo", "hi"}, {"y"}), "axis", -1);
  g->add_output()->set_name("y");
  return m;
}

// A detector RPN's per-level selection as exported: TopK of each level's scores a [b, 50],
// b [b, 20], c [b, 7] (k 10, 5 and, from c's shape, min(7, 10)), the values concatenated, each
// level's indices an output, and a Shape of a level's values (the export's full_like) feeding a
// ConstantOfShape that is added to the concatenation's first row.
inline onnx::ModelProto multilevel_topk_model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"batch", "50"});
  add_input(g, "b", {"batch", "20"});
  add_input(g, "c", {"batch", "7"});
  add_init_i64(g, "k0", {10});
  add_init_i64(g, "k1", {5});
  add_init_i64(g, "one", {1});
  add_init_i64(g, "kmax", {10});
  add_node(g, "Shape", {"c"}, {"c_shape"});
  add_int(add_node(g, "Gather", {"c_shape", "one"}, {"c_n"}), "axis", 0);
  add_node(g, "Min", {"c_n", "kmax"}, {"k2"});
  add_node(g, "TopK", {"a", "k0"}, {"v0", "i0"});
  add_node(g, "TopK", {"b", "k1"}, {"v1", "i1"});
  add_node(g, "TopK", {"c", "k2"}, {"v2", "i2"});
  add_node(g, "Shape", {"v1"}, {"v1_shape"});
  add_node(g, "ConstantOfShape", {"v1_shape"}, {"zeros"});
  add_int(add_node(g, "Concat", {"v0", "v1", "v2"}, {"cat"}), "axis", 1);
  add_node(g, "ReduceSum", {"zeros"}, {"zsum"});
  add_node(g, "Add", {"cat", "zsum"}, {"y"});
  for (const char* o : {"y", "i0", "i1", "i2"}) g->add_output()->set_name(o);
  return m;
}

// An int8 (signed) or uint8 initializer.
inline void add_init_q8(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims, std::vector<int32_t> v, bool is_signed) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(is_signed ? onnx::TensorProto::INT8 : onnx::TensorProto::UINT8);
  for (auto d : dims) t->add_dims(d);
  for (auto x : v) t->add_int32_data(x);
}

// x [b, 8, 6, 4] through three QuantizeLinear -> DequantizeLinear pairs: per tensor (uint8, zero
// point 128), per channel along axis 1 (int8) and in blocks of 2 along axis 3 (int8, opset 21);
// outputs the last dequantized tensor times 1.5 ("y") and the per-channel int8 tensor ("q").
// How many nodes of `g` run `op`.
inline int count_ops(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.op_type == op;
  return n;
}

inline onnx::ModelProto qdq_chain_model() {
  onnx::ModelProto m;
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(21);
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "8", "6", "4"});
  add_init(g, "s0", {}, {0.04f});
  add_init_q8(g, "z0", {}, {128}, false);
  std::vector<float> s1(8);
  std::vector<int32_t> z1(8);
  for (int i = 0; i < 8; ++i) s1[i] = 0.01f + 0.007f * i, z1[i] = i - 4;
  add_init(g, "s1", {8}, s1);
  add_init_q8(g, "z1", {8}, z1, true);
  std::vector<float> s2(8 * 6 * 2);
  for (size_t i = 0; i < s2.size(); ++i) s2[i] = 0.02f + 0.001f * static_cast<float>(i % 17);
  add_init(g, "s2", {1, 8, 6, 2}, s2);
  add_init(g, "k", {}, {1.5f});
  add_node(g, "QuantizeLinear", {"x", "s0", "z0"}, {"q0"});
  add_node(g, "DequantizeLinear", {"q0", "s0", "z0"}, {"d0"});
  add_int(add_node(g, "QuantizeLinear", {"d0", "s1", "z1"}, {"q"}), "axis", 1);
  add_int(add_node(g, "DequantizeLinear", {"q", "s1", "z1"}, {"d1"}), "axis", 1);
  auto* q2 = add_node(g, "QuantizeLinear", {"d1", "s2"}, {"q2"});
  add_int(q2, "axis", 3);
  add_int(q2, "block_size", 2);
  add_int(q2, "output_dtype", onnx::TensorProto::INT8);
  auto* d2 = add_node(g, "DequantizeLinear", {"q2", "s2"}, {"d2"});
  add_int(d2, "axis", 3);
  add_int(d2, "block_size", 2);
  add_node(g, "Mul", {"d2", "k"}, {"y"});
  for (const char* o : {"y", "q"}) g->add_output()->set_name(o);
  return m;
}

}  // namespace unirt::testing

namespace unirt {
namespace testing {

// An empty model importing the default domain at opset 19 (float8 and int8 Q/DQ zero points).
inline onnx::ModelProto opset19_model() {
  onnx::ModelProto m;
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(19);
  return m;
}

// Random [K, N] weights moved onto a symmetric per-column grid (int8: max |w| / 127; float8 E4M3FN:
// max |w| / 448), as a calibrated build or onnxruntime's quantizer leaves them.
inline std::vector<float> on_column_grid(std::vector<float> w, int64_t K, int64_t N, bool fp8) {
  for (int64_t n = 0; n < N; ++n) {
    float amax = 0.f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(w[k * N + n]));
    const float s = amax / (fp8 ? 448.f : 127.f);
    for (int64_t k = 0; k < K; ++k) {
      float& x = w[k * N + n];
      x = fp8 ? e4m3fn_to_float(float_to_e4m3fn(x / s, true)) * s : std::nearbyint(x / s) * s;
    }
  }
  return w;
}

// A scalar zero point 0 of the 8-bit type: int8, or float8 E4M3FN with fp8.
inline void add_zero_point(onnx::GraphProto* g, const std::string& name, bool fp8) {
  auto* z = g->add_initializer();
  z->set_name(name);
  z->set_data_type(fp8 ? onnx::TensorProto::FLOAT8E4M3FN : onnx::TensorProto::INT8);
  z->add_int32_data(0);
}

// An explicitly quantized MLP block, as onnxruntime's QDQ format writes one (opset 19):
// x [b, n, c] -> Q/DQ (scale sx) -> MatMul(W1 on a column grid) + b1 -> GELU (erf form) -> Q/DQ
// (scale sh) -> MatMul(W2 on a column grid) + b2 -> + x. int8, or float8 E4M3FN with fp8.
inline onnx::ModelProto quantized_mlp_model(int64_t c, int64_t hidden, bool fp8, float sx, float sh) {
  onnx::ModelProto m = opset19_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "n", std::to_string(c)});
  add_init(g, "w1", {c, hidden}, on_column_grid(randn(c * hidden, 1.f / std::sqrt(float(c)), 31), c, hidden, fp8));
  add_init(g, "b1", {hidden}, randn(hidden, 0.1f, 32));
  add_init(g, "w2", {hidden, c}, on_column_grid(randn(hidden * c, 0.5f / std::sqrt(float(hidden)), 33), hidden, c, fp8));
  add_init(g, "b2", {c}, randn(c, 0.1f, 34));
  add_init(g, "sx", {}, {sx});
  add_init(g, "sh", {}, {sh});
  add_zero_point(g, "zx", fp8);
  add_zero_point(g, "zh", fp8);
  add_init(g, "sqrt2", {}, {1.4142135f});
  add_init(g, "one", {}, {1.f});
  add_init(g, "half", {}, {0.5f});
  add_node(g, "QuantizeLinear", {"x", "sx", "zx"}, {"xq"}, "qx");
  add_node(g, "DequantizeLinear", {"xq", "sx", "zx"}, {"xd"}, "dqx");
  add_node(g, "MatMul", {"xd", "w1"}, {"h0"}, "fc1");
  add_node(g, "Add", {"h0", "b1"}, {"h"}, "fc1_bias");
  add_node(g, "Div", {"h", "sqrt2"}, {"d"});
  add_node(g, "Erf", {"d"}, {"e"});
  add_node(g, "Add", {"e", "one"}, {"a"});
  add_node(g, "Mul", {"h", "a"}, {"hm"});
  add_node(g, "Mul", {"hm", "half"}, {"act"});
  add_node(g, "QuantizeLinear", {"act", "sh", "zh"}, {"aq"}, "qact");
  add_node(g, "DequantizeLinear", {"aq", "sh", "zh"}, {"ad"}, "dqact");
  add_node(g, "MatMul", {"ad", "w2"}, {"o0"}, "fc2");
  add_node(g, "Add", {"o0", "b2"}, {"o"}, "fc2_bias");
  add_node(g, "Add", {"x", "o"}, {"y"}, "residual");
  g->add_output()->set_name("y");
  return m;
}

// x [b, n, c] -> LayerNormalization (last axis) -> Q/DQ (scale sx) -> MatMul(W [c, n_out] on a
// column grid) + bias: an attention block's norm and qkv projection, quantized (opset 19).
inline onnx::ModelProto quantized_norm_linear_model(int64_t c, int64_t n_out, bool fp8, float sx) {
  onnx::ModelProto m = opset19_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "n", std::to_string(c)});
  add_init(g, "gamma", {c}, randn(c, 0.3f, 41));
  add_init(g, "beta", {c}, randn(c, 0.1f, 42));
  add_init(g, "w", {c, n_out}, on_column_grid(randn(c * n_out, 1.f / std::sqrt(float(c)), 43), c, n_out, fp8));
  add_init(g, "bias", {n_out}, randn(n_out, 0.1f, 44));
  add_init(g, "sx", {}, {sx});
  add_zero_point(g, "zx", fp8);
  add_int(add_node(g, "LayerNormalization", {"x", "gamma", "beta"}, {"xn"}, "norm"), "axis", -1);
  add_node(g, "QuantizeLinear", {"xn", "sx", "zx"}, {"xq"}, "qx");
  add_node(g, "DequantizeLinear", {"xq", "sx", "zx"}, {"xd"}, "dqx");
  add_node(g, "MatMul", {"xd", "w"}, {"h"}, "qkv");
  add_node(g, "Add", {"h", "bias"}, {"y"}, "qkv_bias");
  g->add_output()->set_name("y");
  return m;
}

// A quantized CBlock token mixer in NCHW (opset 19), as the placement pass quantizes one:
// x [b, c, h, w] -> a float 2x2/2 patch conv p -> depthwise 3x3 + p = x1; x1 -> Q/DQ (sx) -> 1x1 conv -> depthwise 5x5 -> Q/DQ
// (sd) -> 1x1 conv, + x1 = x2; x2 -> Q/DQ (sx) -> 1x1 conv, + x2 = y. The 1x1 weights lie on a
// per-output-channel grid; x1 and x2 are read by their Q and by a residual Add, the 5x5's output
// only by its Q.
inline onnx::ModelProto quantized_token_mixer_model(int64_t c, bool fp8, float sx, float sd) {
  onnx::ModelProto m = opset19_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", std::to_string(c), "h", "w"});
  auto pointwise = [&](const std::string& name, uint32_t seed) {  // [cout, cin, 1, 1] = [N, K]: rows on the grid
    std::vector<float> w = randn(c * c, 1.f / std::sqrt(float(c)), seed), t(c * c);
    for (int64_t n = 0; n < c; ++n)
      for (int64_t k = 0; k < c; ++k) t[k * c + n] = w[n * c + k];
    t = on_column_grid(t, c, c, fp8);
    for (int64_t n = 0; n < c; ++n)
      for (int64_t k = 0; k < c; ++k) w[n * c + k] = t[k * c + n];
    add_init(g, name + "_w", {c, c, 1, 1}, w);
    add_init(g, name + "_b", {c}, randn(c, 0.1f, seed + 1));
  };
  add_conv(g, "x", "p", c, c, 2, 1, 2, 49);
  add_conv(g, "p", "pos", c, c, 3, c, 1, 51);
  add_node(g, "Add", {"p", "pos"}, {"x1"}, "pos_residual");
  add_init(g, "sx", {}, {sx});
  add_init(g, "sd", {}, {sd});
  add_zero_point(g, "zx", fp8);
  add_zero_point(g, "zd", fp8);
  add_node(g, "QuantizeLinear", {"x1", "sx", "zx"}, {"x1q"}, "q_x1");
  add_node(g, "DequantizeLinear", {"x1q", "sx", "zx"}, {"x1d"}, "dq_x1");
  pointwise("conv1", 53);
  add_node(g, "Conv", {"x1d", "conv1_w", "conv1_b"}, {"c1"}, "conv1");
  add_conv(g, "c1", "dw", c, c, 5, c, 1, 55);
  add_node(g, "QuantizeLinear", {"dw", "sd", "zd"}, {"dwq"}, "q_dw");
  add_node(g, "DequantizeLinear", {"dwq", "sd", "zd"}, {"dwd"}, "dq_dw");
  pointwise("conv2", 57);
  add_node(g, "Conv", {"dwd", "conv2_w", "conv2_b"}, {"c2"}, "conv2");
  add_node(g, "Add", {"x1", "c2"}, {"x2"}, "residual");
  add_zero_point(g, "z2", fp8);
  add_node(g, "QuantizeLinear", {"x2", "sx", "z2"}, {"x2q"}, "q_x2");
  add_node(g, "DequantizeLinear", {"x2q", "sx", "z2"}, {"x2d"}, "dq_x2");
  pointwise("conv3", 59);
  add_node(g, "Conv", {"x2d", "conv3_w", "conv3_b"}, {"c3"}, "conv3");
  add_node(g, "Add", {"x2", "c3"}, {"y"}, "residual2");
  g->add_output()->set_name("y");
  return m;
}

// attention_model's output -> Q/DQ (scale sy) -> MatMul(W [C, C] on a column grid) + bias: a
// quantized attention projection (run at opset 19).
inline onnx::ModelProto quantized_attention_model(int64_t heads, int64_t hd, bool fp8, float sy) {
  onnx::ModelProto m = attention_model(heads, hd, "n");
  auto* g = m.mutable_graph();
  const int64_t c = heads * hd;
  g->mutable_output(0)->set_name("out");
  add_init(g, "sy", {}, {sy});
  add_zero_point(g, "zy", fp8);
  add_init(g, "wp", {c, c}, on_column_grid(randn(c * c, 1.f / std::sqrt(float(c)), 61), c, c, fp8));
  add_init(g, "bp", {c}, randn(c, 0.1f, 62));
  add_node(g, "QuantizeLinear", {"y", "sy", "zy"}, {"yq"}, "q_attn");
  add_node(g, "DequantizeLinear", {"yq", "sy", "zy"}, {"yd"}, "dq_attn");
  add_node(g, "MatMul", {"yd", "wp"}, {"p0"}, "proj");
  add_node(g, "Add", {"p0", "bp"}, {"out"}, "proj_bias");
  return m;
}

}  // namespace testing
}  // namespace unirt
