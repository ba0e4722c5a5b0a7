#include "classification.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "ir/half.h"

namespace unirt {

std::vector<double> to_doubles(const HostTensor& t) {
  const size_t n = static_cast<size_t>(t.numel());
  if (t.bytes.size() < n * dtype_size(t.dtype)) throw Error("tensor '" + t.name + "' holds fewer bytes than its shape needs");
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case DType::Float32: v[i] = t.as<float>()[i]; break;
      case DType::Float16: v[i] = half_to_float(t.as<uint16_t>()[i]); break;
      case DType::Float64: v[i] = t.as<double>()[i]; break;
      case DType::Int64: v[i] = static_cast<double>(t.as<int64_t>()[i]); break;
      case DType::Int32: v[i] = t.as<int32_t>()[i]; break;
      case DType::Int8: v[i] = t.as<int8_t>()[i]; break;
      case DType::Uint8: case DType::Bool: v[i] = t.as<uint8_t>()[i]; break;
      default: throw Error("tensor '" + t.name + "' has type " + dtype_name(t.dtype) + ", which cannot be compared");
    }
  }
  return v;
}

std::vector<ClassScore> top_classes(const HostTensor& logits, size_t k, const std::vector<std::string>& labels) {
  if (logits.shape.size() != 2 || logits.shape[0] != 1)
    throw Error("classification needs a [1, classes] output; '" + logits.name + "' is " + dims_text(logits.shape));
  const auto l = to_doubles(logits);
  const size_t nc = l.size();
  if (nc == 0) throw Error("output '" + logits.name + "' has no classes");
  const double mx = *std::max_element(l.begin(), l.end());
  std::vector<double> prob(nc);
  double sum = 0;
  for (size_t i = 0; i < nc; ++i) sum += prob[i] = std::exp(l[i] - mx);
  std::vector<size_t> idx(nc);
  for (size_t i = 0; i < nc; ++i) idx[i] = i;
  k = std::min(k, nc);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](size_t a, size_t b) { return prob[a] > prob[b]; });
  std::vector<ClassScore> top;
  for (size_t i = 0; i < k; ++i) {
    const size_t c = idx[i];
    top.push_back({static_cast<int64_t>(c), prob[c] / sum, c < labels.size() ? labels[c] : std::string()});
  }
  return top;
}

std::vector<std::string> read_labels(const std::string& path, bool required) {
  std::vector<std::string> labels;
  std::ifstream f(path);
  if (!f && required) throw Error("cannot open labels file '" + path + "'");
  for (std::string line; std::getline(f, line);) labels.push_back(line);
  return labels;
}

std::string random_weights_note(const Engine& e, const char* what) {
  auto it = e.graph.metadata.find("unirt.weights");
  if (it == e.graph.metadata.end() || it->second.rfind("seeded random", 0) != 0) return "";
  return std::string("NOTE: this model's weights are ") + it->second + " (unirt.weights): the " + what +
         " below show the engine runs, they are not predictions\n";
}

}  // namespace unirt
