// unirt inspect MODEL [--shapes ...]: inputs/outputs with symbolic shapes, per-layer table with
// fusion notes and weight sizes, pass reports, engine header, planned memory at given shapes.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>

#include "cli.h"
#include "runtime/planner.h"

namespace unirt::cli {

namespace {

// Layers with tensor-core work: where a precision choice matters.
bool is_compute_layer(const std::string& op) {
  static const char* ops[] = {"Conv", "ConvTranspose", "MatMul", "Gemm", "unirt.Linear", "unirt.ConvNHWC", "unirt.Mlp", "unirt.Attention",
                              "unirt.QuantizedLinear", "unirt.QuantizedMlp"};
  for (const char* x : ops)
    if (op == x) return true;
  return false;
}

// Each compute layer: INT8/FP8 with its scales (the note quantize_layers wrote), or the precision its
// output has. Depthwise convolutions and attention stay float in a quantized engine (they may write
// the next layer's 8-bit codes: q_scale, listed as such).
void print_layer_precision(const Engine& e) {
  const Graph& g = e.graph;
  const std::string mode = quant_mode_name(e.options.quantization.mode);
  std::map<std::string, int> count;
  std::printf("%-60s %-18s %-9s %s\n", "layer", "op", "precision", "scales");
  for (const Node& n : g.nodes) {
    if (!is_compute_layer(n.op_type)) continue;
    std::string precision, scales;
    // A unirt.QuantizedMlp carries both layers' notes: fc1's scales, then fc2's.
    for (const std::string& note : n.notes)
      if (e.options.quantization.mode != QuantMode::None && note.rfind(mode + ":", 0) == 0)
        precision = mode, scales += (scales.empty() ? "" : " | ") + note.substr(mode.size() + 2);
    if (precision.empty() && (n.op_type == "unirt.QuantizedLinear" || n.op_type == "unirt.QuantizedMlp"))
      precision = dtype_name(g.value(n.inputs[0]).dtype);  // explicit QDQ
    // A float layer that also writes the next 8-bit layer's codes computes in its input's type.
    if (precision.empty() && n.has_attr("q_scale") && !n.inputs.empty()) precision = dtype_name(g.value(n.inputs[0]).dtype);
    if (precision.empty()) precision = n.outputs.empty() ? "-" : dtype_name(g.value(n.outputs[0]).dtype);
    if (n.has_attr("q_scale") && !n.outputs.empty()) {
      char b[96];
      std::snprintf(b, sizeof b, "%swrites %s codes at scale %g", scales.empty() ? "" : "; ", dtype_name(g.value(n.outputs.back()).dtype),
                    n.attr_f("q_scale", 0.f));
      scales += b;
    }
    ++count[precision];
    std::printf("%-60s %-18s %-9s %s\n", n.name.substr(0, 60).c_str(), n.op_type.c_str(), precision.c_str(), scales.c_str());
  }
  std::printf("\ncompute layers by precision:");
  for (const auto& [p, k] : count) std::printf(" %s=%d", p.c_str(), k);
  std::printf("\n");
  for (const auto& [name, p] : e.options.quantization.layer_precision) std::printf("  --layer-precision %s=%s\n", name.c_str(), p.c_str());
}

}  // namespace

void add_inspect_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    std::string model, shapes;
    bool all = false, precision = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("inspect", "layers, shapes, fusions, weights, passes, memory");
  c->add_option("model", o->model, "engine or ONNX file")->required();
  c->add_option("--shapes", o->shapes, "also plan memory for these input shapes, e.g. input:1x3x224x224");
  c->add_flag("--all", o->all, "also list the shape-only nodes the planner evaluates");
  c->add_flag("--precision", o->precision, "only each compute layer's precision and quantization scales");
  add_common(c, o->common);
  r.actions[c] = [o] {
    auto e = load(o->model, o->common);
    const Graph& g = e->graph;
    if (o->precision) {
      print_layer_precision(*e);
      return 0;
    }
    std::printf("model: %s%s\n", o->model.c_str(), e->source.empty() || e->source == o->model ? "" : (" (built from " + e->source + ")").c_str());
    char when[64] = "-";
    if (e->created) {
      const std::time_t t = static_cast<std::time_t>(e->created);
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
    }
    std::printf("engine: backend %s, precision %s%s, fusions %s, built by unirt %s at %s in %.1f ms\n", e->options.backend.c_str(),
                precision_name(e->options.precision),
                e->options.quantization.mode == QuantMode::None ? "" : (std::string(" + ") + quant_mode_name(e->options.quantization.mode) +
                                                                         " layers (inspect --precision lists them)").c_str(),
                e->options.fuse ? "on" : "off",
                e->unirt_version.empty() ? kUnirtVersion : e->unirt_version.c_str(), when, e->build_ms);
    std::printf("graph '%s': opset %lld, producer '%s'\n", g.name.c_str(), static_cast<long long>(g.opset), g.producer.c_str());
    for (int id : g.inputs)
      std::printf("input  %-12s %-8s %-32s %s\n", g.value(id).name.c_str(), dtype_name(g.value(id).dtype), shape_str(g.value(id).shape).c_str(),
                  e->options.profile.describe(g.value(id).name).c_str());
    for (int id : g.outputs)
      std::printf("output %-12s %-8s %s\n", g.value(id).name.c_str(), dtype_name(g.value(id).dtype), shape_str(g.value(id).shape).c_str());
    size_t weights = 0, nconst = 0;
    for (const auto& v : g.values)
      if (v.data) weights += v.data->bytes.size(), ++nconst;
    std::printf("weights: %s in %zu constants\n", human_bytes(static_cast<double>(weights)).c_str(), nconst);

    std::printf("\npasses:\n");
    for (const auto& p : e->passes) {
      std::printf("  %-24s changes %5d  %8.2f ms\n", p.pass.c_str(), p.changes, p.ms);
      for (const auto& d : p.details) std::printf("      %s\n", d.c_str());
    }
    if (e->specialize_per_shape)
      std::printf("\nshapes follow from the input shapes through ops the algebra cannot decide: the engine is specialised per input shape at run time\n");
    if (!e->shape_inputs.empty()) {
      std::printf("\nshape inputs (the engine is specialised per value of these, at run time):");
      for (const auto& n : e->shape_inputs) std::printf(" %s", n.c_str());
      std::printf("\n");
    }
    if (!g.guards.empty()) {
      std::printf("\nshape guards (checked on every new input shape; the build checked them at the profile's corners):\n");
      for (const auto& gd : g.guards)
        std::printf("  %s: %s: %s == %s\n", gd.node.c_str(), gd.check.c_str(), gd.lhs.brief(80).c_str(), gd.rhs.brief(80).c_str());
    }
    if (!g.data_dims.empty()) {
      std::printf("\ndata-dependent sizes (memory planned for the bound; each run reads the size back after its node):\n");
      for (const auto& d : g.data_dims)
        std::printf("  %s: written by '%s', at most %s\n", d.symbol.c_str(), d.node.c_str(), d.bound.brief(80).c_str());
    }
    if (!e->tactics.empty()) {
      std::printf("\ntactics:\n");
      for (const auto& kv : e->tactics) std::printf("  %-48s %s\n", kv.first.c_str(), kv.second.c_str());
    }

    std::map<std::string, int> ops;
    int runtime_nodes = 0, static_nodes = 0;
    for (const auto& n : g.nodes) (node_is_static(g, n) ? static_nodes : runtime_nodes)++;
    std::printf("\nlayers: %d run%s", runtime_nodes, static_nodes ? "" : "\n");
    if (static_nodes)
      std::printf(", %d shape-only nodes evaluated by the planner%s\n", static_nodes, o->all ? " (marked *)" : " (--all lists them)");
    std::printf("  %-48s %-20s %-40s %10s  %s\n", "name", "op", "output shape", "weights", "notes");
    for (const auto& n : g.nodes) {
      const bool st = node_is_static(g, n);
      if (!st) ++ops[n.op_type];
      if (st && !o->all) continue;
      std::string out = n.outputs.empty() || n.outputs[0] < 0 ? "" : shape_str(g.value(n.outputs[0]).shape);
      size_t w = 0;
      for (int in : n.inputs)
        if (in >= 0 && g.value(in).data) w += g.value(in).data->bytes.size();
      std::string notes;
      for (const auto& s : n.notes) notes += (notes.empty() ? "" : "; ") + s;
      const std::string op = n.domain.empty() || n.op_type.rfind(n.domain + ".", 0) == 0 ? n.op_type : n.domain + "." + n.op_type;
      std::printf("%s %-48s %-20s %-40s %10s  %s\n", st ? "*" : " ", n.name.substr(0, 48).c_str(), op.c_str(), out.c_str(),
                  w ? human_bytes(static_cast<double>(w)).c_str() : "-", notes.c_str());
    }
    std::printf("\nlayers by op:");
    for (const auto& kv : ops) std::printf(" %s=%d", kv.first.c_str(), kv.second);
    std::printf("\n");
    if (!o->shapes.empty() && !is_deferred(*e)) {
      const auto want = parse_shapes(o->shapes);
      Plan p = make_plan(*e, want);
      // What a new input shape costs the planner (binding, guards, shapes, lifetimes, packing).
      std::vector<double> us;
      for (int i = 0; i < 50; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        p = make_plan(*e, want);
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("planning a new input shape: %.0f us (median of 50)\n", percentile(us, 50));
      std::printf("plan at %s: %zu kernels, peak activations %s (without reuse %s), weights %s\n", o->shapes.c_str(), p.steps.size(),
                  human_bytes(static_cast<double>(p.arena_bytes)).c_str(), human_bytes(static_cast<double>(p.naive_bytes)).c_str(),
                  human_bytes(static_cast<double>(weights)).c_str());
      for (int id : g.outputs) std::printf("  output %s: %s\n", g.value(id).name.c_str(), dims_text(p.values[id].shape).c_str());
    }
    return 0;
  };
}

}  // namespace unirt::cli
