// Detection ops: NonMaxSuppression (ONNX semantics: per batch and class, candidates above
// score_threshold by descending score, ties to the lower box index, greedy suppression by IoU,
// at most max_output_boxes_per_class; the output length is a data-dependent size: the kernel
// writes it into the extra output the runtime gives such a node), RoiAlign (avg mode) and
// unirt.MultiLevelRoiAlign (each RoI on the map of its level; passes/fuse_multilevel_roi_align.cpp)
// and unirt.BoxDecode (deltas to boxes; passes/fuse_box_decode.cpp).
#include "cpu/cpu_util.h"
#include "backend/box_decode_rule.h"
#include "backend/nms_rule.h"
#include "backend/roi_align_rule.h"

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
        // Descending; a NaN score sorts last (a score threshold has already left it out).
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t x, int64_t y) { return s[x] > s[y] || (s[x] == s[x] && s[y] != s[y]); });
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

class RoiAlignBase : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;

 protected:
  void check_batch_indices(const std::vector<int64_t>& bi, int64_t N) const {
    for (size_t r = 0; r < bi.size(); ++r)
      if (bi[r] < 0 || bi[r] >= N)
        fail("batch_indices[" + std::to_string(r) + "] = " + std::to_string(bi[r]) + " is outside 0.." + std::to_string(N - 1));
  }
};

class RoiAlignKernel : public RoiAlignBase {
 public:
  using RoiAlignBase::RoiAlignBase;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "X");
    expect_float(in[1], "rois");
    const auto& xs = in[0].shape;
    const int64_t R = in[1].shape[0], N = xs[0], C = xs[1], H = xs[2], W = xs[3];
    const int64_t oh = out[0].shape[2], ow = out[0].shape[3];
    const std::vector<int64_t> bi = ints(in[2]);
    check_batch_indices(bi, N);
    const bool half_pixel = node_.attr_s("coordinate_transformation_mode", opset_ >= 16 ? "half_pixel" : "output_half_pixel") ==
                            "half_pixel";
    const float scale = node_.attr_f("spatial_scale", 1.f);
    const int64_t sr = node_.attr_i("sampling_ratio", 0);
    const float* x = in[0].as<float>();
    const float* rois = in[1].as<float>();
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
    for (int64_t rc = 0; rc < R * C; ++rc) {
      const int64_t r = rc / C, c = rc % C;
      const RoiBins b = roi_bins(rois + r * 4, scale, half_pixel, oh, ow, sr);
      const float* plane = x + (bi[r] * C + c) * H * W;
      float* yo = y + rc * oh * ow;
      auto load = [plane](int64_t i) { return plane[i]; };
      for (int64_t py = 0; py < oh; ++py)
        for (int64_t px = 0; px < ow; ++px) yo[py * ow + px] = roi_align_bin(b, py, px, H, W, load);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, RoiAlign, RoiAlignKernel, "float32", "X [n, c, h, w], rois [r, 4], avg mode");

class MultiLevelRoiAlignKernel : public RoiAlignBase {
 public:
  using RoiAlignBase::RoiAlignBase;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "rois");
    const int maps = static_cast<int>(in.size()) - 3;
    for (int i = 0; i < maps; ++i) expect_float(in[3 + i], "feature map");
    const bool nhwc = node_.attr_s("feature_layout", "NCHW") == "NHWC";
    const int64_t R = in[0].shape[0], N = in[3].shape[0], C = in[3].shape[nhwc ? 3 : 1];
    const bool out_nhwc = node_.attr_s("output_layout", "NCHW") == "NHWC";
    const int64_t oh = out[0].shape[out_nhwc ? 1 : 2], ow = out[0].shape[out_nhwc ? 2 : 3];
    const std::vector<int64_t> bi = ints(in[1]);
    check_batch_indices(bi, N);
    std::vector<double> lv(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; ++r) {
      switch (in[2].dtype) {
        case DType::Float32: lv[r] = in[2].as<float>()[r]; break;
        case DType::Int64: lv[r] = static_cast<double>(in[2].as<int64_t>()[r]); break;
        case DType::Int32: lv[r] = in[2].as<int32_t>()[r]; break;
        default: unsupported_type(in[2], "level");
      }
    }
    const auto scales = node_.attr_floats("spatial_scales");
    const auto levels = node_.attr_ints("levels");
    const bool half_pixel = node_.attr_s("coordinate_transformation_mode", "half_pixel") == "half_pixel";
    const int64_t sr = node_.attr_i("sampling_ratio", 0);
    const float* rois = in[0].as<float>();
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic)
    for (int64_t rc = 0; rc < R * C; ++rc) {
      const int64_t r = rc / C, c = rc % C;
      // Output element (py, px) of this RoI and channel, in either layout.
      float* yo = out_nhwc ? y + r * oh * ow * C + c : y + rc * oh * ow;
      const int64_t ostep = out_nhwc ? C : 1;
      int map = -1;
      for (int i = 0; i < maps; ++i)
        if (lv[r] == static_cast<double>(levels[i])) map = i;
      if (map < 0) {  // no level matches: the masked sum it replaces is zero
        for (int64_t k = 0; k < oh * ow; ++k) yo[k * ostep] = 0.f;
        continue;
      }
      const TensorView& f = in[3 + map];
      const int64_t H = f.shape[nhwc ? 1 : 2], W = f.shape[nhwc ? 2 : 3];
      const RoiBins b = roi_bins(rois + r * 4, scales[map], half_pixel, oh, ow, sr);
      // Element y * W + x of channel c: channel-strided in NHWC maps.
      const float* plane = f.as<float>() + (nhwc ? bi[r] * H * W * C + c : (bi[r] * C + c) * H * W);
      const int64_t step = nhwc ? C : 1;
      auto load = [plane, step](int64_t i) { return plane[i * step]; };
      for (int64_t py = 0; py < oh; ++py)
        for (int64_t px = 0; px < ow; ++px) yo[(py * ow + px) * ostep] = roi_align_bin(b, py, px, H, W, load);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, unirt.MultiLevelRoiAlign, MultiLevelRoiAlignKernel, "float32", "rois [r, 4], feature maps NCHW or NHWC");

class BoxDecodeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "rois");
    expect_float(in[1], "deltas");
    const bool has_bound = present(in, 2);
    if (has_bound) expect_float(in[2], "bound");
    BoxBroadcast bb;
    BoxDecodeParams p{};
    const std::string why = box_decode_setup(in[0].shape, in[1].shape, has_bound ? in[2].numel() : -1, node_.attr_floats("stds"),
                                             node_.attr_f("max_ratio", 0.f), &bb, &p);
    if (!why.empty()) fail(why);
    const float* bound = has_bound ? in[2].as<float>() : nullptr;
    const float* r = in[0].as<float>();
    const float* d = in[1].as<float>();
    float* y = out[0].as<float>();
    const int64_t boxes = in[1].numel() / 4;
#pragma omp parallel for num_threads(ctx.threads) if (boxes > 4096)
    for (int64_t b = 0; b < boxes; ++b) decode_box(r + rois_box(bb, b) * 4, d + b * 4, p, bound, y + b * 4);
  }
};
UNIRT_REGISTER_KERNEL(cpu, unirt.BoxDecode, BoxDecodeKernel, "float32", "rois [..., 4] (broadcast), deltas [..., 4], bound [2]");

}  // namespace
}  // namespace cpu
}  // namespace unirt
