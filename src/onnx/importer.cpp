// Parses ONNX with libprotobuf (onnx.proto compiled at build time) into the unirt IR.
#include "onnx/importer.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "onnx.pb.h"
#include "ir/file.h"

namespace unirt {
namespace {

TensorData tensor_from_proto(const onnx::TensorProto& t, const std::string& what) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    throw Error(what + ": tensor '" + t.name() + "' uses external data, which unirt does not load; "
                "re-export with the weights inside the .onnx file");
  if (!dtype_supported(t.data_type()))
    throw Error(what + ": tensor '" + t.name() + "' has ONNX data type " + std::to_string(t.data_type()) +
                ", unsupported (float32/16/64, int64/32/8, uint8, bool are)");
  TensorData d;
  d.dtype = static_cast<DType>(t.data_type());
  for (auto dim : t.dims()) d.shape.push_back(dim);
  const size_t esz = dtype_size(d.dtype);
  const size_t bytes = checked_bytes(d.shape, d.dtype, what + ": tensor '" + t.name() + "'");
  const size_t n = bytes / esz;
  d.bytes.resize(bytes);
  if (t.has_raw_data()) {
    if (t.raw_data().size() != d.bytes.size())
      throw Error(what + ": tensor '" + t.name() + "' raw_data holds " + std::to_string(t.raw_data().size()) +
                  " bytes, its shape needs " + std::to_string(d.bytes.size()));
    if (n) std::memcpy(d.bytes.data(), t.raw_data().data(), d.bytes.size());
    return d;
  }
  auto count_check = [&](size_t have) {
    if (have != n)
      throw Error(what + ": tensor '" + t.name() + "' holds " + std::to_string(have) + " values, its shape needs " +
                  std::to_string(n));
  };
  switch (d.dtype) {
    case DType::Float32:
      count_check(t.float_data_size());
      if (n) std::memcpy(d.bytes.data(), t.float_data().data(), n * 4);
      break;
    case DType::Float64:
      count_check(t.double_data_size());
      if (n) std::memcpy(d.bytes.data(), t.double_data().data(), n * 8);
      break;
    case DType::Int64:
      count_check(t.int64_data_size());
      if (n) std::memcpy(d.bytes.data(), t.int64_data().data(), n * 8);
      break;
    case DType::Int32:
      count_check(t.int32_data_size());
      for (size_t i = 0; i < n; ++i) d.as<int32_t>()[i] = t.int32_data(static_cast<int>(i));
      break;
    case DType::Float16:  // stored as the 16 bits in int32_data
      count_check(t.int32_data_size());
      for (size_t i = 0; i < n; ++i) d.as<uint16_t>()[i] = static_cast<uint16_t>(t.int32_data(static_cast<int>(i)));
      break;
    case DType::Int8:
    case DType::Uint8:
    case DType::Bool:
    case DType::Float8E4M3FN:  // the 8 bits in int32_data
      count_check(t.int32_data_size());
      for (size_t i = 0; i < n; ++i) d.bytes[i] = static_cast<uint8_t>(t.int32_data(static_cast<int>(i)));
      break;
    default:
      throw Error(what + ": tensor '" + t.name() + "': unsupported element type");
  }
  return d;
}

AttrValue attr_from_proto(const onnx::AttributeProto& a, const std::string& node_desc) {
  using A = onnx::AttributeProto;
  switch (a.type()) {
    case A::INT: return static_cast<int64_t>(a.i());
    case A::FLOAT: return a.f();
    case A::STRING: return a.s();
    case A::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case A::FLOATS: return std::vector<float>(a.floats().begin(), a.floats().end());
    case A::STRINGS: return std::vector<std::string>(a.strings().begin(), a.strings().end());
    case A::TENSOR: return tensor_from_proto(a.t(), node_desc + " attribute '" + a.name() + "'");
    case A::GRAPH:
    case A::GRAPHS:
      throw Error(node_desc + ": attribute '" + a.name() + "' is a subgraph; control flow (If/Loop/Scan) is not supported");
    default:
      throw Error(node_desc + ": attribute '" + a.name() + "' has an unsupported type " + std::to_string(a.type()));
  }
}

// Constant nodes become initializers so every later stage sees one kind of constant.
TensorData constant_node_value(const Node& n) {
  if (n.has_attr("value")) return n.attr_t("value");
  if (n.has_attr("value_float")) return TensorData::from_float({n.attr_f("value_float", 0)}, {});
  if (n.has_attr("value_floats")) {
    auto v = n.attr_floats("value_floats");
    return TensorData::from_float(v, {static_cast<int64_t>(v.size())});
  }
  if (n.has_attr("value_int")) return TensorData::from_int64({n.attr_i("value_int")}, {});
  if (n.has_attr("value_ints")) {
    auto v = n.attr_ints("value_ints");
    return TensorData::from_int64(v, {static_cast<int64_t>(v.size())});
  }
  throw Error(n.describe() + ": Constant without a value attribute");
}

}  // namespace

Graph import_onnx_bytes(const std::string& bytes, const std::string& source_name) {
  onnx::ModelProto model;
  if (bytes.empty()) throw Error(source_name + ": file is empty, not an ONNX model");
  if (!model.ParseFromString(bytes))
    throw Error(source_name + ": not a valid ONNX model (protobuf parse failed; truncated or not ONNX?)");
  if (!model.has_graph()) throw Error(source_name + ": ONNX model has no graph");
  Graph g;
  g.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  for (const auto& kv : model.metadata_props()) g.metadata[kv.key()] = kv.value();
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") g.opset = op.version();
  if (g.opset == 0) throw Error(source_name + ": model imports no default-domain opset");
  if (g.opset < 1 || g.opset > 23)
    throw Error(source_name + ": opset " + std::to_string(g.opset) + " is outside what unirt reads (1..23)");
  const auto& gp = model.graph();
  g.name = gp.name();

  for (const auto& init : gp.initializer()) {
    if (g.find_value(init.name()) >= 0) throw Error(source_name + ": initializer '" + init.name() + "' defined twice");
    g.add_constant(init.name(), tensor_from_proto(init, source_name));
  }
  for (const auto& in : gp.input()) {
    if (g.find_value(in.name()) >= 0) continue;  // an initializer listed as input (old exporters)
    const auto& tt = in.type().tensor_type();
    if (!in.type().has_tensor_type())
      throw Error("graph input '" + in.name() + "' is not a tensor (sequences/maps are not supported)");
    if (!dtype_supported(tt.elem_type()))
      throw Error("graph input '" + in.name() + "' has unsupported ONNX element type " + std::to_string(tt.elem_type()));
    int id = g.add_value(in.name(), static_cast<DType>(tt.elem_type()));
    Value& v = g.value(id);
    if (tt.has_shape()) {
      int i = 0;
      for (const auto& d : tt.shape().dim()) {
        if (d.has_dim_value() && (d.dim_value() < 0 || d.dim_value() > resource_limits().max_dim))
          throw Error("graph input '" + in.name() + "': dimension " + std::to_string(i) + " is " + std::to_string(d.dim_value()) +
                      ", expected 0.." + std::to_string(resource_limits().max_dim));
        if (d.has_dim_value()) v.shape.push_back(Dim(static_cast<int64_t>(d.dim_value())));
        else if (d.has_dim_param() && !d.dim_param().empty()) v.shape.push_back(Dim::symbol(d.dim_param()));
        else v.shape.push_back(Dim::symbol(in.name() + "_d" + std::to_string(i)));
        ++i;
      }
      v.has_shape = true;
    } else {
      throw Error("graph input '" + in.name() + "' has no shape (rank unknown); re-export with a shape");
    }
    g.inputs.push_back(id);
  }

  int anon = 0;
  if (gp.node_size() > resource_limits().max_nodes)
    throw Error("the graph has " + std::to_string(gp.node_size()) + " nodes, above the limit of " +
                std::to_string(resource_limits().max_nodes));
  for (const auto& np : gp.node()) {
    Node n;
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(anon++) : np.name();
    n.op_type = np.op_type();
    n.domain = np.domain();
    for (const auto& a : np.attribute()) n.attrs[a.name()] = attr_from_proto(a, n.describe());
    for (const auto& in : np.input()) {
      if (in.empty()) {
        n.inputs.push_back(-1);
        continue;
      }
      int id = g.find_value(in);
      if (id < 0)
        throw Error(n.describe() + ": input '" + in + "' is not produced by any earlier node, initializer or graph input");
      n.inputs.push_back(id);
    }
    if (n.op_type == "Constant") {
      n.outputs = {-1};
      check_node_supported(n, g.opset);
      if (np.output_size() != 1) throw Error(n.describe() + ": expected 1 output");
      if (g.find_value(np.output(0)) >= 0) throw Error(n.describe() + ": output '" + np.output(0) + "' is already defined");
      g.add_constant(np.output(0), constant_node_value(n));
      continue;
    }
    for (const auto& out : np.output()) {
      if (out.empty()) {
        n.outputs.push_back(-1);
        continue;
      }
      if (g.find_value(out) >= 0) throw Error(n.describe() + ": output '" + out + "' is already defined");
      n.outputs.push_back(g.add_value(out));
    }
    check_node_supported(n, g.opset);
    g.add_node(std::move(n));
  }
  for (const auto& out : gp.output()) {
    int id = g.find_value(out.name());
    if (id < 0) throw Error("graph output '" + out.name() + "' is not produced by any node");
    g.outputs.push_back(id);
  }
  return g;
}

Graph import_onnx_file(const std::string& path) {
  return import_onnx_bytes(read_file(path, "ONNX model"), path);
}

}  // namespace unirt
