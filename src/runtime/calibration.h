// Activation ranges for post-training quantization: a histogram of |x| per tensor over the
// calibration batches, and the three ways TensorRT and modelopt users know to pick the range
// (amax) from it:
//   entropy     the clipping threshold whose 128-level quantized distribution is closest to the
//               observed one in KL divergence (TensorRT's entropy calibration);
//   percentile  the given percentile of |x| (99.99 by default);
//   minmax      the largest |x| seen.
// And the calibration cache: a text file of one amax per tensor that a later build reuses.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/session.h"

namespace unirt {

enum class Calibrator { Entropy, Percentile, MinMax };

// "entropy", "percentile", "minmax" <-> Calibrator; throws Error naming the accepted names.
Calibrator parse_calibrator(const std::string& name);
const char* calibrator_name(Calibrator c);

// |x| counted in `bins` equal bins over [0, range). The range starts at the first batch's largest
// |x| and doubles (merging bin pairs) when a later batch goes beyond it, so the histogram never
// needs the data twice; NaN and infinities are counted apart and never widen the range.
class AbsHistogram {
 public:
  explicit AbsHistogram(int bins = 2048);
  void add(const float* x, int64_t n);
  int bins() const { return static_cast<int>(counts_.size()); }
  double range() const { return range_; }
  double amax() const { return amax_; }
  double total() const { return total_; }
  int64_t non_finite() const { return non_finite_; }
  const std::vector<double>& counts() const { return counts_; }

 private:
  std::vector<double> counts_;
  double range_ = 0, amax_ = 0, total_ = 0;
  int64_t non_finite_ = 0;
};

// The amax of a tensor from its histogram. `levels`: the positive quantization levels the
// entropy method compares against (128 for int8's symmetric range). Returns 0 for a tensor that
// was all zeros.
double entropy_amax(const AbsHistogram& h, int levels = 128);
double percentile_amax(const AbsHistogram& h, double percentile);
double choose_amax(const AbsHistogram& h, Calibrator c, double percentile = 99.99);

// A calibration cache: the calibrator it came from and one amax per tensor name. The text form is
//   unirt-calibration 1 <calibrator> [percentile]
//   <amax as %a hex float> <tensor name>
// (hex floats: the amax round-trips exactly). load() throws Error naming the line that is wrong.
struct CalibrationCache {
  Calibrator calibrator = Calibrator::Entropy;
  double percentile = 99.99;
  std::map<std::string, float> amax;

  std::string to_text() const;
  static CalibrationCache from_text(const std::string& text, const std::string& where);
  void save(const std::string& path) const;
  static CalibrationCache load(const std::string& path);
};

// The float activations a quantized engine would quantize: the non-constant float32/float16
// inputs of MatMul, Gemm, Conv and ConvTranspose, in graph order, each once. Given the graph
// after the BatchNorm folds and before any other fusion, the names are the ONNX tensor names that
// quantize_layers looks up.
std::vector<std::string> calibration_tensors(const Graph& g);

struct CalibrationProgress {
  int batch = 0, batches = 0;  // batches done, of
  double elapsed_s = 0;
};

// Runs the calibration batches through an FP32 engine of `imported` built with opts (BatchNorms
// folded, nothing else fused, the calibration tensors as extra outputs) on `backend`, and returns the histogram of each
// calibration tensor. next_batch(i, inputs) fills batch i's inputs (by input name) and returns
// false when there are no more; `batches` is how many are expected (0: unknown); progress is
// called after each batch. The histograms are filled on `threads` host threads (0: one per core).
std::map<std::string, AbsHistogram> collect_histograms(const Graph& imported, BuildOptions opts, std::unique_ptr<Backend> backend,
                                                       const std::function<bool(int, std::vector<HostTensor>&)>& next_batch,
                                                       int batches, const std::function<void(const CalibrationProgress&)>& progress,
                                                       int threads = 0);

// The cache of those histograms: one amax per tensor by the calibrator.
CalibrationCache make_calibration_cache(const std::map<std::string, AbsHistogram>& histograms, Calibrator c, double percentile);

}  // namespace unirt
