// A classifier's host side, shared by `unirt classify`, the Python package and the server: the
// most probable classes of one logits row, their labels, and the note for seeded random weights.
#pragma once
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/session.h"

namespace unirt {

struct ClassScore {
  int64_t index = 0;
  double probability = 0;  // softmax over the row, in double
  std::string label;       // empty when the labels do not reach this index
};

// The k most probable classes of `logits` ([1, classes]), most probable first.
std::vector<ClassScore> top_classes(const HostTensor& logits, size_t k, const std::vector<std::string>& labels);
// One label per line; a missing file is an error only when `required` (the default labels may be
// absent from an installed tree: the indices still print).
std::vector<std::string> read_labels(const std::string& path, bool required);
// The engine's ONNX metadata unirt.weights when it says the weights are seeded random (written by
// unirt_models.export), as a sentence about `what` (classes, detections); "" otherwise.
std::string random_weights_note(const Engine& e, const char* what);
// Elements widened to double (float32/float16/float64/int64/int32/int8/uint8/bool).
std::vector<double> to_doubles(const HostTensor& t);

}  // namespace unirt
