// Build-time evaluation of constant nodes for fold_constants: the CPU kernels, so a folded
// constant is computed by the same code that would compute it at run time on the CPU.
#include "backend/kernel.h"
#include "runtime/engine.h"

namespace unirt {

ConstantEvaluator cpu_constant_evaluator() {
  return [](const Graph& g, const Node& n, const std::vector<const TensorData*>& inputs,
            std::vector<TensorData>& outputs) -> bool {
    const KernelFactory* f = KernelRegistry::get("cpu").find(n.op_type);
    if (!f) return false;
    std::vector<TensorView> in, out;
    for (const TensorData* t : inputs) {
      TensorView v;
      if (t) {
        v.dtype = t->dtype;
        v.shape = t->shape;
        v.data = const_cast<uint8_t*>(t->bytes.data());  // kernels read inputs only
        if (t->dtype == DType::Int64) v.host_values = t->as<int64_t>();
      }
      in.push_back(v);
    }
    for (TensorData& t : outputs) {
      TensorView v;
      if (t.dtype != DType::Undefined) {
        v.dtype = t.dtype;
        v.shape = t.shape;
        v.data = t.bytes.data();
      }
      out.push_back(v);
    }
    auto kernel = (*f)(KernelCreateArgs{g, n, Precision::FP32});
    std::vector<uint8_t> scratch(kernel->prepare(in, out));
    RunContext ctx;
    ctx.workspace = scratch.data();
    ctx.workspace_bytes = scratch.size();
    ctx.threads = 1;
    kernel->run(in, out, ctx);
    return true;
  };
}

}  // namespace unirt
