// ConvTranspose geometry shared by the CPU and CUDA kernels: up to 3 spatial axes (unused ones
// are 1), and the leading pad of each axis as ONNX Runtime derives it from pads, auto_pad or
// output_shape (as ONNX's reference does). y[o] gathers x[i] * w[k] wherever o = i * stride - pad + k * dilation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"

namespace unirt {

struct ConvTransposeGeometry {
  int nsp = 2;
  int64_t batch = 0, cin = 0, cout = 0, group = 1;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  int64_t in_pixels() const { return in[0] * in[1] * in[2]; }
  int64_t out_pixels() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_volume() const { return k[0] * k[1] * k[2]; }

  // Throws Error naming the node when the shapes do not fit the attributes.
  static ConvTransposeGeometry of(const Node& n, const std::vector<int64_t>& xs, const std::vector<int64_t>& ws,
                                  const std::vector<int64_t>& ys) {
    auto fail = [&](const std::string& m) { throw Error(n.describe() + ": " + m); };
    if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size() || ys.size() != xs.size())
      fail("input " + dims_text(xs) + ", weight " + dims_text(ws) + ", output " + dims_text(ys) +
           ": 1 to 3 spatial dims of one rank are supported");
    ConvTransposeGeometry g;
    g.nsp = static_cast<int>(xs.size()) - 2;
    g.batch = xs[0];
    g.cin = xs[1];
    g.group = n.attr_i("group", 1);
    if (g.group <= 0 || ws[0] != g.cin || g.cin % g.group != 0)
      fail("weight " + dims_text(ws) + " does not fit input " + dims_text(xs) + " with group " + std::to_string(g.group));
    g.cout = ws[1] * g.group;
    if (ys[0] != g.batch || ys[1] != g.cout) fail("output " + dims_text(ys) + " does not match input/weight");
    const size_t nsp = static_cast<size_t>(g.nsp);
    const auto strides = n.attr_ints("strides", std::vector<int64_t>(nsp, 1));
    const auto dil = n.attr_ints("dilations", std::vector<int64_t>(nsp, 1));
    const auto pads = n.attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
    const auto opad = n.attr_ints("output_padding", std::vector<int64_t>(nsp, 0));
    const bool derived = !n.attr_ints("output_shape").empty();
    const std::string ap = n.attr_s("auto_pad", "NOTSET");
    if (strides.size() != nsp || dil.size() != nsp || pads.size() != 2 * nsp || opad.size() != nsp)
      fail("strides/dilations/pads/output_padding do not match " + std::to_string(nsp) + " spatial dims");
    for (size_t i = 0; i < nsp; ++i) {
      g.in[i] = xs[2 + i];
      g.out[i] = ys[2 + i];
      g.k[i] = ws[2 + i];
      g.s[i] = strides[i];
      g.d[i] = dil[i];
      const int64_t total = g.s[i] * (g.in[i] - 1) + opad[i] + (g.k[i] - 1) * g.d[i] + 1 - g.out[i];
      // ONNX's reference puts the odd pixel of SAME_UPPER at the end, of SAME_LOWER at the start.
      if (ap == "SAME_LOWER") g.p[i] = total - total / 2;
      else if (ap == "SAME_UPPER" || derived) g.p[i] = total / 2;
      else if (ap == "VALID") g.p[i] = 0;
      else g.p[i] = pads[i];
    }
    return g;
  }
};

}  // namespace unirt
