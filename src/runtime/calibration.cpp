#include "runtime/calibration.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <set>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "ir/graph.h"
#include "ir/half.h"

namespace unirt {

Calibrator parse_calibrator(const std::string& name) {
  if (name == "entropy") return Calibrator::Entropy;
  if (name == "percentile") return Calibrator::Percentile;
  if (name == "minmax") return Calibrator::MinMax;
  throw Error("calibrator '" + name + "': expected entropy, percentile or minmax");
}

const char* calibrator_name(Calibrator c) {
  switch (c) {
    case Calibrator::Entropy: return "entropy";
    case Calibrator::Percentile: return "percentile";
    default: return "minmax";
  }
}

AbsHistogram::AbsHistogram(int bins) : counts_(static_cast<size_t>(std::max(bins, 2)), 0.0) {
  if (bins < 2 || bins % 2) throw Error("a calibration histogram needs an even number of bins (>= 2), not " + std::to_string(bins));
}

void AbsHistogram::add(const float* x, int64_t n) {
  double m = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (!std::isfinite(a)) continue;
    m = std::max(m, static_cast<double>(a));
    ++finite;
  }
  non_finite_ += n - finite;
  if (finite == 0) return;
  amax_ = std::max(amax_, m);
  total_ += static_cast<double>(finite);
  if (m == 0 && range_ == 0) {  // zeros fall in bin 0 whatever the range becomes
    counts_[0] += static_cast<double>(finite);
    return;
  }
  if (range_ == 0) range_ = m;
  const int b = bins();
  while (range_ < m) {  // double the range: bin pairs merge into the lower half
    for (int i = 0; i < b / 2; ++i) counts_[i] = counts_[2 * i] + counts_[2 * i + 1];
    std::fill(counts_.begin() + b / 2, counts_.end(), 0.0);
    range_ *= 2;
  }
  const double per_bin = b / range_;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (!std::isfinite(a)) continue;
    const int k = static_cast<int>(std::min<double>(b - 1, std::floor(a * per_bin)));
    counts_[k] += 1;
  }
}

namespace {

// KL(p || q) of two unnormalised distributions of the same length; q == 0 where p > 0 is +inf.
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) sp += p[i], sq += q[i];
  if (sp <= 0 || sq <= 0) return std::numeric_limits<double>::infinity();
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    if (q[i] <= 0) return std::numeric_limits<double>::infinity();
    const double pi = p[i] / sp, qi = q[i] / sq;
    kl += pi * std::log(pi / qi);
  }
  return kl;
}

}  // namespace

double entropy_amax(const AbsHistogram& h, int levels) {
  if (h.total() <= 0 || h.amax() <= 0) return 0;
  std::vector<double> bins = h.counts();
  const int b = h.bins();
  const double width = h.range() / b;
  // The zero bin of ReLU and padding outputs would dominate the divergence: it counts as its
  // neighbour does (as modelopt's entropy calibrator does).
  bins[0] = bins[1];
  int last = b;
  while (last > 0 && bins[last - 1] == 0) --last;
  if (last <= levels) return std::min(h.amax(), last * width);
  double best = std::numeric_limits<double>::infinity();
  int best_i = last;
  std::vector<double> p, q, level_sum(static_cast<size_t>(levels)), level_bins(static_cast<size_t>(levels));
  std::vector<int> level_of;
  double tail = 0;
  for (int k = levels; k < b; ++k) tail += bins[k];
  for (int i = levels; i <= last; ++i) {
    if (i > levels) tail -= bins[i - 1];
    // Reference: the first i bins, everything beyond clipped into the last of them.
    p.assign(bins.begin(), bins.begin() + i);
    p[i - 1] += tail;
    // Candidate: the i bins quantized to `levels` levels (level of bin k: floor(k * levels / i)),
    // each level's count spread evenly over its non-empty bins, expanded back to i bins.
    std::fill(level_sum.begin(), level_sum.end(), 0.0);
    std::fill(level_bins.begin(), level_bins.end(), 0.0);
    level_of.resize(static_cast<size_t>(i));
    for (int k = 0; k < i; ++k) {
      const int l = static_cast<int>(static_cast<int64_t>(k) * levels / i);
      level_of[k] = l;
      if (bins[k] == 0) continue;
      level_sum[l] += bins[k];
      level_bins[l] += 1;
    }
    q.assign(static_cast<size_t>(i), 0.0);
    for (int k = 0; k < i; ++k)
      if (bins[k] != 0) q[k] = level_sum[level_of[k]] / level_bins[level_of[k]];
    const double kl = kl_divergence(p, q);
    if (kl <= best) best = kl, best_i = i;  // ties: the wider range
  }
  return std::min(h.amax(), best_i * width);
}

double percentile_amax(const AbsHistogram& h, double percentile) {
  if (!(percentile > 0 && percentile <= 100)) throw Error("percentile " + std::to_string(percentile) + ": expected (0, 100]");
  if (h.total() <= 0 || h.amax() <= 0) return 0;
  const double want = h.total() * percentile / 100.0;
  const double width = h.range() / h.bins();
  double cum = 0;
  for (int k = 0; k < h.bins(); ++k) {
    cum += h.counts()[k];
    if (cum >= want) return std::min(h.amax(), (k + 1) * width);
  }
  return h.amax();
}

double choose_amax(const AbsHistogram& h, Calibrator c, double percentile) {
  switch (c) {
    case Calibrator::Entropy: return entropy_amax(h);
    case Calibrator::Percentile: return percentile_amax(h, percentile);
    default: return h.amax();
  }
}

std::string CalibrationCache::to_text() const {
  std::ostringstream o;
  o << "unirt-calibration 1 " << calibrator_name(calibrator);
  if (calibrator == Calibrator::Percentile) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " %.17g", percentile);
    o << buf;
  }
  o << "\n";
  for (const auto& [name, a] : amax) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%a", static_cast<double>(a));
    o << buf << " " << name << "\n";
  }
  return o.str();
}

CalibrationCache CalibrationCache::from_text(const std::string& text, const std::string& where) {
  CalibrationCache c;
  std::istringstream in(text);
  std::string line;
  int no = 0;
  auto bad = [&](const std::string& why) -> Error {
    return Error(where + ":" + std::to_string(no) + ": " + why + " (a unirt calibration cache: 'unirt-calibration 1 <calibrator>', then '<amax> <tensor>' lines)");
  };
  if (!std::getline(in, line)) throw bad("empty file");
  ++no;
  {
    std::istringstream h(line);
    std::string magic, calib;
    int version = 0;
    if (!(h >> magic >> version >> calib) || magic != "unirt-calibration") throw bad("not a calibration cache");
    if (version != 1) throw bad("version " + std::to_string(version) + ", this unirt reads version 1");
    try {
      c.calibrator = parse_calibrator(calib);
    } catch (const Error& e) {
      throw bad(e.what());
    }
    if (c.calibrator == Calibrator::Percentile && !(h >> c.percentile)) throw bad("the percentile is missing");
  }
  while (std::getline(in, line)) {
    ++no;
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp + 1 >= line.size()) throw bad("expected '<amax> <tensor name>'");
    char* end = nullptr;
    const double a = std::strtod(line.c_str(), &end);
    if (end != line.c_str() + sp || !std::isfinite(a) || a < 0) throw bad("amax '" + line.substr(0, sp) + "' is not a finite number >= 0");
    const std::string name = line.substr(sp + 1);
    if (!c.amax.emplace(name, static_cast<float>(a)).second) throw bad("tensor '" + name + "' twice");
  }
  return c;
}

void CalibrationCache::save(const std::string& path) const {
  // Written whole to a temporary file, then renamed: an interrupted write leaves the old cache.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error("cannot write calibration cache '" + tmp + "'");
    f << to_text();
    if (!f.flush()) throw Error("cannot write calibration cache '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("cannot replace calibration cache '" + path + "'");
}

CalibrationCache CalibrationCache::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read calibration cache '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_text(ss.str(), path);
}

std::vector<std::string> calibration_tensors(const Graph& g) {
  static const std::set<std::string> quantizable = {"MatMul", "Gemm", "Conv", "ConvTranspose"};
  std::vector<std::string> names;
  std::set<int> seen;
  for (const Node& n : g.nodes) {
    if (!quantizable.count(n.op_type)) continue;
    // MatMul: both operands (attention's Q.K and P.V); the others: the data input only.
    const size_t count = n.op_type == "MatMul" ? 2 : 1;
    for (size_t i = 0; i < count && i < n.inputs.size(); ++i) {
      const int v = n.inputs[i];
      if (v < 0 || g.value(v).is_const() || !seen.insert(v).second) continue;
      // (An imported graph knows only its inputs' types: Undefined is an activation whose type
      // shape inference has not set yet; the kernels of these ops take float.)
      const DType t = g.value(v).dtype;
      if (t == DType::Float32 || t == DType::Float16 || t == DType::Undefined) names.push_back(g.value(v).name);
    }
  }
  return names;
}

std::map<std::string, AbsHistogram> collect_histograms(const Graph& imported, BuildOptions opts, std::unique_ptr<Backend> backend,
                                                       const std::function<bool(int, std::vector<HostTensor>&)>& next_batch,
                                                       int batches, const std::function<void(const CalibrationProgress&)>& progress,
                                                       int threads) {
  // The graph a quantized build places its layers in: BatchNorms folded (so a conv after a BN
  // reads the BN's input), nothing fused; its quantizable inputs become extra outputs.
  opts.fuse = false;
  opts.fold_batchnorm = true;
  opts.precision = Precision::FP32;
  opts.quantization = QuantizationOptions{};
  auto engine = std::make_shared<Engine>(build_engine(imported, opts));
  const std::vector<std::string> names = calibration_tensors(engine->graph);
  if (names.empty()) throw Error("nothing to calibrate: the model has no MatMul, Gemm, Conv or ConvTranspose with a float activation input");
  std::set<int> outputs(engine->graph.outputs.begin(), engine->graph.outputs.end());
  for (const std::string& name : names) {
    const int v = engine->graph.find_value(name);
    if (v >= 0 && !outputs.count(v)) engine->graph.outputs.push_back(v), outputs.insert(v);
  }
  Session session(engine, std::move(backend));
  std::map<std::string, AbsHistogram> hist;
  for (const std::string& name : names) hist.emplace(name, AbsHistogram());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<HostTensor> inputs;
  // Each tensor's histogram is its own: a batch's are filled on several threads (a detector has
  // hundreds of calibration tensors, some of millions of values).
  const int workers = std::max(1, threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
  int done = 0;
  for (; batches <= 0 || done < batches; ++done) {
    inputs.clear();
    if (!next_batch(done, inputs)) break;
    const std::vector<HostTensor> outs = session.run(inputs);
    std::vector<std::pair<const HostTensor*, AbsHistogram*>> work;
    for (const HostTensor& t : outs) {
      auto it = hist.find(t.name);
      if (it == hist.end()) continue;
      if (t.dtype != DType::Float32 && t.dtype != DType::Float16) throw Error("calibration tensor '" + t.name + "' is " + dtype_name(t.dtype) + ", not float");
      work.emplace_back(&t, &it->second);
    }
    std::atomic<size_t> next{0};
    auto fill = [&] {
      std::vector<float> widened;
      for (size_t i; (i = next.fetch_add(1)) < work.size();) {
        const HostTensor& t = *work[i].first;
        if (t.dtype == DType::Float16) {
          widened.resize(static_cast<size_t>(t.numel()));
          for (int64_t k = 0; k < t.numel(); ++k) widened[k] = half_to_float(t.as<uint16_t>()[k]);
          work[i].second->add(widened.data(), t.numel());
        } else {
          work[i].second->add(t.as<float>(), t.numel());
        }
      }
    };
    std::vector<std::thread> pool;
    for (int k = 1; k < std::min<int>(workers, static_cast<int>(work.size())); ++k) pool.emplace_back(fill);
    fill();
    for (std::thread& th : pool) th.join();
    if (progress)
      progress({done + 1, batches, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
  }
  if (done == 0) throw Error("no calibration batches: give at least one");
  return hist;
}

CalibrationCache make_calibration_cache(const std::map<std::string, AbsHistogram>& histograms, Calibrator c, double percentile) {
  CalibrationCache cache;
  cache.calibrator = c;
  cache.percentile = percentile;
  for (const auto& [name, h] : histograms) cache.amax[name] = static_cast<float>(choose_amax(h, c, percentile));
  return cache;
}

}  // namespace unirt
