// ConvTranspose (1 to 3 spatial axes, groups, dilations, output_padding/output_shape): per image
// and group one sgemm makes the columns W^T X, then col2im adds each kernel tap into the output,
// which starts as the bias. Parallel over output channels, so no two threads write one value.
#include "backend/conv_transpose_geometry.h"
#include "cpu/blas.h"
#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

class ConvTransposeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    const auto G = ConvTransposeGeometry::of(node_, in[0].shape, in[1].shape, out[0].shape);
    return static_cast<size_t>(G.cout / G.group * G.kernel_volume() * G.in_pixels()) * sizeof(float);
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "X");
    expect_float(in[1], "W");
    const auto G = ConvTransposeGeometry::of(node_, in[0].shape, in[1].shape, out[0].shape);
    const bool bias = present(in, 2);
    if (bias) {
      expect_float(in[2], "B");
      expect_shape(in[2], {G.cout}, "B");
    }
    const int64_t cin_g = G.cin / G.group, cout_g = G.cout / G.group, kvol = G.kernel_volume();
    const int64_t ihw = G.in_pixels(), ohw = G.out_pixels(), rows = cout_g * kvol;
    std::vector<float> scratch;
    float* col = static_cast<float*>(ctx.workspace);
    if (!col || ctx.workspace_bytes < static_cast<size_t>(rows * ihw) * sizeof(float)) {
      scratch.resize(static_cast<size_t>(rows * ihw));
      col = scratch.data();
    }
    const float* x = in[0].as<float>();
    const float* w = in[1].as<float>();
    float* y = out[0].as<float>();
    for (int64_t n = 0; n < G.batch; ++n)
      for (int64_t g = 0; g < G.group; ++g) {
        sgemm(true, false, rows, ihw, cin_g, 1.f, w + g * cin_g * rows, rows, x + (n * G.cin + g * cin_g) * ihw, ihw, 0.f, col,
              ihw, ctx.threads);
#pragma omp parallel for num_threads(ctx.threads)
        for (int64_t co = 0; co < cout_g; ++co) {
          float* yc = y + (n * G.cout + g * cout_g + co) * ohw;
          const float b = bias ? in[2].as<float>()[g * cout_g + co] : 0.f;
          std::fill(yc, yc + ohw, b);
          for (int64_t kk = 0; kk < kvol; ++kk) {
            const int64_t k2 = kk % G.k[2], k1 = (kk / G.k[2]) % G.k[1], k0 = kk / (G.k[2] * G.k[1]);
            const float* c = col + (co * kvol + kk) * ihw;
            for (int64_t i0 = 0; i0 < G.in[0]; ++i0) {
              const int64_t o0 = i0 * G.s[0] - G.p[0] + k0 * G.d[0];
              if (o0 < 0 || o0 >= G.out[0]) continue;
              for (int64_t i1 = 0; i1 < G.in[1]; ++i1) {
                const int64_t o1 = i1 * G.s[1] - G.p[1] + k1 * G.d[1];
                if (o1 < 0 || o1 >= G.out[1]) continue;
                const float* cr = c + (i0 * G.in[1] + i1) * G.in[2];
                float* yr = yc + (o0 * G.out[1] + o1) * G.out[2];
                for (int64_t i2 = 0; i2 < G.in[2]; ++i2) {
                  const int64_t o2 = i2 * G.s[2] - G.p[2] + k2 * G.d[2];
                  if (o2 >= 0 && o2 < G.out[2]) yr[o2] += cr[i2];
                }
              }
            }
          }
        }
      }
  }
};

}  // namespace
UNIRT_REGISTER_KERNEL(cpu, ConvTranspose, ConvTransposeKernel, "float32", "N x C x 1..3 spatial dims");

}  // namespace cpu
}  // namespace unirt
