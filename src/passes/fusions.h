// Backend-independent fusions; each returns how many times it fired and notes the fused node.
#pragma once
#include "ir/graph.h"

namespace unirt {

// Conv -> BatchNormalization (constant statistics, conv output used only by the BN) becomes one
// Conv with scaled weights and a shifted bias (fold_bn_after_conv.cpp).
int fold_bn_after_conv(Graph& g);
// x * 0.5 * (1 + Erf(x / sqrt(2))) in the orderings exporters emit becomes Gelu (opset-20 semantics).
int fuse_gelu(Graph& g);

// softmax(q k^T * scale) v over a packed qkv projection, with its reshape/permute/gather and the
// output transpose/reshape, becomes one unirt.Attention(qkv) node (head_dim <= 128).
int fuse_attention(Graph& g);

// BatchNormalization feeding an unpadded one-group Conv folds into the conv's weights and bias
// (fold_bn_before_conv.cpp).
int fold_bn_before_conv(Graph& g);
// Channels-last convolution regions: Conv -> unirt.ConvNHWC / unirt.Linear (1x1) between
// transposes that are then sunk and cancelled (convert_to_nhwc.cpp and its steps, layout_nhwc.h).
// Returns the convs converted.
int convert_to_nhwc(Graph& g);

// sum_i RoiAlign_i(feat_i, rois) * (level == c_i) -> unirt.MultiLevelRoiAlign(rois, batch_indices,
// level, feat_0..feat_k), each RoI sampled on its own level (fuse_multilevel_roi_align.cpp).
int fuse_multilevel_roi_align(Graph& g);
// The delta-to-box decoding (centre/size arithmetic, exp of the clipped log-sizes, clipping to the
// image) -> unirt.BoxDecode(rois, deltas[, bound]) (fuse_box_decode.cpp).
int fuse_box_decode(Graph& g);
// Concat of TopK values over pyramid levels -> unirt.MultiLevelTopK(s_0..s_L, k_0..k_L) -> (values,
// indices_0..indices_L): one sort for every level (fuse_multilevel_topk.cpp).
int fuse_multilevel_topk(Graph& g);

// MatMul by a constant [K, N] (+ its bias Add) -> unirt.Linear (fuse_linear.cpp).
int fuse_linear(Graph& g);
// unirt.Linear -> exact Gelu becomes the Linear's activation attribute (fuse_linear_gelu.cpp).
int fuse_linear_gelu(Graph& g);
// Add(unirt.Linear/ConvNHWC output, same-shape tensor) -> the layer's residual input (fuse_residual.cpp).
int fuse_residual(Graph& g);
// float16 unirt.Linear(gelu) -> unirt.Linear (+ residual) with narrow channels -> unirt.Mlp.
constexpr int64_t kMaxMlpChannels = 64;
constexpr int64_t kMlpHiddenChunk = 64;
int fuse_mlp(Graph& g);
// QuantizeLinear -> DequantizeLinear -> unirt.Linear (a symmetric per-tensor activation scale, a
// weight on a per-channel grid) -> unirt.QuantizedLinear, with a GELU layer's output Q folded in
// (lower_quantized_layers.cpp). Returns the layers lowered.
int lower_quantized_layers(Graph& g);

// unirt.QuantizedLinear(gelu, 8-bit out) -> unirt.QuantizedLinear (+ residual) with C channels
// back to C through H -> unirt.QuantizedMlp (fuse_quantized_mlp.cpp; after assign_precision).
constexpr int64_t kMaxQuantizedMlpChannels = 128;
constexpr int64_t kMaxQuantizedMlpHidden = 512;
int fuse_quantized_mlp(Graph& g);

}  // namespace unirt
