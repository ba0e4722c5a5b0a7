// FP16 engines: every float32 activation and weight becomes float16; graph inputs and outputs stay
// float32 with a Cast at the boundary, so callers feed and read float32 as with an FP32 engine.
// Kernels accumulate statistics, softmax and GEMMs in float32.
#include "passes/pipeline.h"
#include "passes/shape_inference.h"

namespace unirt {

namespace cpu {
uint16_t float_to_half(float f);
}

namespace {

std::shared_ptr<TensorData> to_half(const TensorData& t) {
  auto h = std::make_shared<TensorData>();
  h->dtype = DType::Float16;
  h->shape = t.shape;
  h->bytes.resize(static_cast<size_t>(t.numel()) * 2);
  for (int64_t i = 0; i < t.numel(); ++i) h->as<uint16_t>()[i] = cpu::float_to_half(t.as<float>()[i]);
  return h;
}

Node make_cast(Graph& g, const std::string& base, int in, int out, DType to) {
  Node c;
  c.name = g.unique_name(base + "/cast_" + dtype_name(to));
  c.op_type = "Cast";
  c.inputs = {in};
  c.outputs = {out};
  c.attrs["to"] = static_cast<int64_t>(to);
  c.notes.push_back(std::string("precision boundary: ") + dtype_name(to));
  return c;
}

}  // namespace

int assign_precision(Graph& g, Precision p) {
  if (p != Precision::FP16) return 0;
  int changes = 0;
  for (auto& v : g.values) {
    if (v.data && v.dtype == DType::Float32) {
      v.data = to_half(*v.data);
      v.dtype = DType::Float16;
      ++changes;
    }
  }
  const size_t original_nodes = g.nodes.size();
  for (int in : std::vector<int>(g.inputs)) {
    if (g.value(in).dtype != DType::Float32) continue;
    const int h = g.add_value(g.unique_name(g.value(in).name + "/fp16"), DType::Float16);
    for (size_t i = 0; i < original_nodes; ++i)
      for (int& x : g.nodes[i].inputs)
        if (x == in) x = h;
    g.add_node(make_cast(g, g.value(in).name, in, h, DType::Float16));
    ++changes;
  }
  for (int& out : g.outputs) {
    Value& v = g.value(out);
    if (v.dtype != DType::Float32 || v.is_const() || v.producer < 0) continue;
    const int h = g.add_value(g.unique_name(g.value(out).name + "/fp16"), DType::Float16);
    for (auto& n : g.nodes) {
      for (int& x : n.outputs)
        if (x == out) x = h;
      if (n.op_type != "Cast" || n.outputs[0] != out)
        for (int& x : n.inputs)
          if (x == out) x = h;
    }
    g.add_node(make_cast(g, g.value(out).name, h, out, DType::Float32));
    ++changes;
  }
  g.relink();
  g.compact();
  infer_shapes(g);
  return changes;
}

}  // namespace unirt
