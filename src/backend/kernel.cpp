#include "backend/backend.h"

#include <chrono>

namespace unirt {

double Backend::elapsed_ms(const std::function<void()>& fn) {
  synchronize();
  auto t0 = std::chrono::steady_clock::now();
  fn();
  synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

KernelRegistry& KernelRegistry::get(const std::string& backend) {
  static std::map<std::string, KernelRegistry> registries;
  return registries[backend];
}

void KernelRegistry::add(const std::string& op_type, KernelFactory f, KernelInfo info) {
  entries_[op_type] = Entry{std::move(f), std::move(info)};
}

const KernelFactory* KernelRegistry::find(const std::string& op_type) const {
  auto it = entries_.find(op_type);
  return it == entries_.end() ? nullptr : &it->second.factory;
}

const KernelInfo* KernelRegistry::info(const std::string& op_type) const {
  auto it = entries_.find(op_type);
  return it == entries_.end() ? nullptr : &it->second.info;
}

std::vector<std::string> KernelRegistry::ops() const {
  std::vector<std::string> v;
  for (const auto& kv : entries_) v.push_back(kv.first);
  return v;
}

}  // namespace unirt

#ifndef UNIRT_HAVE_CUDA
namespace unirt {
bool cuda_backend_available(std::string* why_not) {
  if (why_not) *why_not = "this unirt was built without the CUDA backend";
  return false;
}
std::unique_ptr<Backend> make_cuda_backend() {
  throw Error("this unirt was built without the CUDA backend (rebuild with nvcc present)");
}
}  // namespace unirt
#endif
