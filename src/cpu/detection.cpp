// Detection ops: NonMaxSuppression (ONNX semantics: per batch and class, candidates above
// score_threshold by descending score, ties to the lower box index, greedy suppression by IoU,
// at most max_output_boxes_per_class). The output length is a data-dependent size: the kernel
// writes it into the extra output the runtime gives such a node.
#include "cpu/cpu_util.h"
#include "backend/nms_rule.h"

namespace unirt {
namespace cpu {
namespace {

class NonMaxSuppressionKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    expect_float(in[0], "boxes");
    expect_float(in[1], "scores");
    const int64_t batches = in[0].shape[0], boxes = in[0].shape[1], classes = in[1].shape[1];
    if (in[0].shape[2] != 4 || in[1].shape[0] != batches || in[1].shape[2] != boxes)
      fail("boxes " + dims_text(in[0].shape) + " and scores " + dims_text(in[1].shape) + " do not match ([b,n,4] and [b,c,n])");
    const int64_t max_out = present(in, 2) && in[2].numel() ? std::max<int64_t>(0, ints(in[2]).at(0)) : 0;
    const float iou = present(in, 3) && in[3].numel() ? scalar(in[3], "iou_threshold") : 0.0f;
    const bool has_thr = present(in, 4) && in[4].numel();
    const float thr = has_thr ? scalar(in[4], "score_threshold") : 0.0f;
    const bool center = node_.attr_i("center_point_box", 0) != 0;
    const float* bx = in[0].as<float>();
    const float* sc = in[1].as<float>();
    std::vector<int64_t> rows;
    std::vector<int64_t> order;
    std::vector<NmsBox> kept;
    for (int64_t b = 0; b < batches; ++b)
      for (int64_t c = 0; c < classes; ++c) {
        const float* s = sc + (b * classes + c) * boxes;
        order.clear();
        for (int64_t i = 0; i < boxes; ++i)
          if (!has_thr || s[i] > thr) order.push_back(i);
        std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return s[x] > s[y]; });
        kept.clear();
        for (int64_t i : order) {
          if (static_cast<int64_t>(kept.size()) >= max_out) break;
          const NmsBox box = nms_box(bx + (b * boxes + i) * 4, center);
          bool suppressed = false;
          for (const NmsBox& k : kept)
            if (nms_suppresses(k, box, iou)) {
              suppressed = true;
              break;
            }
          if (suppressed) continue;
          kept.push_back(box);
          rows.insert(rows.end(), {b, c, i});
        }
      }
    const int64_t count = static_cast<int64_t>(rows.size() / 3);
    if (out[0].shape.size() != 2 || count > out[0].shape[0])
      fail("output " + dims_text(out[0].shape) + " cannot hold " + std::to_string(count) + " selected boxes");
    if (!rows.empty()) std::memcpy(out[0].data, rows.data(), rows.size() * sizeof(int64_t));
    if (out.size() > 1) out[1].as<int64_t>()[0] = count;
  }

 private:
  float scalar(const TensorView& t, const char* what) const {
    expect_float(t, what);
    return t.as<float>()[0];
  }
};
UNIRT_REGISTER_KERNEL(cpu, NonMaxSuppression, NonMaxSuppressionKernel, "float32", "boxes [b, n, 4], scores [b, c, n]");

}  // namespace
}  // namespace cpu
}  // namespace unirt
