// ONNX ModelProto -> unirt::Graph.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace unirt {

Graph import_onnx_file(const std::string& path);
Graph import_onnx_bytes(const std::string& bytes, const std::string& source_name);

// The ONNX op types (default domain) the importer accepts.
std::vector<std::string> supported_onnx_ops();

// The ops passes create (unirt.Attention, unirt.ConvNHWC, unirt.Linear, unirt.Mlp): in engine
// files only, never accepted from an ONNX file.
std::vector<std::string> fused_ops();

// Validates one node against the op table: known op, accepted attributes, input/output counts,
// required inputs and outputs present. `fused_ok` also accepts the fused ops (engine files).
// Throws Error naming the node.
void check_node_supported(const Node& node, int64_t opset, bool fused_ok = false);

}  // namespace unirt
