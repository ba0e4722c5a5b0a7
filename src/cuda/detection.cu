// Detection ops on the GPU: NonMaxSuppression, with ONNX semantics and the same suppression rule
// as the CPU kernel (backend/nms_rule.h), without a host synchronisation:
//   1. one CUB radix sort of every (batch, class) row at once: 64-bit keys, the row in the high
//      word and the score's order-inverted bits in the low word (stable, so equal scores keep the
//      lower box index first);
//   2. per row, the number of candidates above score_threshold (a prefix of the sorted row);
//   3. a chunk of candidates at a time: IoU bit masks (for each candidate, 64-bit words saying
//      which later candidates of its chunk it would suppress: the bitmask scheme of Faster R-CNN's
//      GPU NMS), the candidates that earlier chunks' kept boxes suppress, and
//   4. one block per row walking the chunk's candidates in order, 64 at a time, keeping those no
//      kept box suppresses, up to max_output_boxes_per_class;
//   5. one block turns the kept counts into output offsets and writes the total where the runtime
//      reads the data-dependent size back; the rows are then written [batch, class, box].
// And RoiAlign (avg mode) and unirt.MultiLevelRoiAlign (each RoI on the map of its level): one
// thread per output element, float32 or float16 maps with float32 RoI coordinates and sums, the
// sampling rule of backend/roi_align_rule.h shared with the CPU. And unirt.BoxDecode: one thread
// per box, the arithmetic of backend/box_decode_rule.h (float32, no contraction).
#include <map>

#include <algorithm>
#include <cub/device/device_radix_sort.cuh>

#include "cuda/cuda_context.h"
#include "cuda/half_io.cuh"
#include "backend/box_decode_rule.h"
#include "backend/nms_rule.h"
#include "backend/roi_align_rule.h"

namespace unirt {
namespace cuda {
namespace {

constexpr int kMaskBits = 64;

// Sort keys (row, descending score) and box indices.
__global__ void nms_keys_kernel(const float* scores, unsigned long long* keys, int* idx, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = scores[i];
    if (v == 0.f) v = 0.f;
    unsigned u = __float_as_uint(v);
    u = ~((u & 0x80000000u) ? ~u : (u | 0x80000000u));
    if (v != v) u = 0xffffffffu;  // NaN sorts last (as on the CPU): never ahead of a real score
    keys[i] = (static_cast<unsigned long long>(i / n) << 32) | u;
    idx[i] = static_cast<int>(i % n);
  }
}

// Candidates per row: scores above the threshold (all of them without one), a prefix of the
// sorted row. Counted over the unsorted row (the same count: coalesced reads, where the sorted
// order's gather made an 80k-box row take 0.2 ms).
constexpr int kCountThreads = 1024;
__global__ void __launch_bounds__(kCountThreads) nms_count_kernel(const float* scores, int* valid, int64_t n, const float* score_threshold) {
  const int64_t row = blockIdx.x;
  const float* s = scores + row * n;
  int c = 0;
  if (!score_threshold) {
    c = threadIdx.x == 0 ? static_cast<int>(n) : 0;
  } else {
    const float thr = *score_threshold;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) c += s[i] > thr;
  }
  for (int o2 = 16; o2 > 0; o2 >>= 1) c += __shfl_down_sync(0xffffffffu, c, o2);
  __shared__ int warp_sums[kCountThreads / 32];
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    int t = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x + 31) / 32; ++w) t += warp_sums[w];
    valid[row] = t;
  }
}

// The candidates of a row are taken a chunk at a time (kChunk in sorted order): each chunk's IoU
// mask is kChunk x kChunk bits, whatever the row's length, and a chunk's candidates are first
// checked against the boxes already kept by earlier chunks. That is the same greedy selection as
// one mask over the whole row, with memory bounded per row (32 MiB, not the 763 MiB of a
// detector's 80k-box row), and a row that has reached max_output_boxes_per_class skips its later
// chunks.
constexpr int kChunk = 16384;

__device__ inline int64_t nms_row_limit(const int64_t* max_out) {
  const int64_t v = max_out ? *max_out : 0;
  return v < 0 ? 0 : v;
}

// mask[row][i][w] bit b: chunk candidate i suppresses chunk candidate 64*w + b (> i).
// A bounded grid walks the 64 x 64 tiles of the chunk, so the launch does not grow with the
// box count (only tiles inside the row's candidates do work); 64 threads, one candidate each.
constexpr int kMaskGrid = 64;
__global__ void nms_mask_kernel(const float* boxes, const int* order, const int* valid, const int* kept_count, unsigned long long* mask,
                                int64_t n, int64_t classes, int chunk, int words, bool center, const float* iou_threshold,
                                const int64_t* max_out, int64_t row0, int c0) {
  const int64_t row = row0 + blockIdx.z;  // mask holds the rows row0.. of this launch only
  const int nvalid = min(valid[row] - c0, chunk);
  if (nvalid <= 0 || (c0 > 0 && kept_count[row] >= nms_row_limit(max_out))) return;
  const float iou = iou_threshold ? *iou_threshold : 0.0f;
  const float* bx = boxes + (row / classes) * n * 4;
  const int* ord = order + row * n + c0;
  __shared__ NmsBox cols[kMaskBits];
  for (int by = blockIdx.y; by * kMaskBits < nvalid; by += gridDim.y) {
    const int i = by * kMaskBits + threadIdx.x;
    const NmsBox me = i < nvalid ? nms_box(bx + static_cast<int64_t>(ord[i]) * 4, center) : NmsBox{0, 0, 0, 0};
    for (int bxw = by + static_cast<int>(blockIdx.x); bxw * kMaskBits < nvalid && bxw < words; bxw += gridDim.x) {
      const int col0 = bxw * kMaskBits;
      const int cn = min(kMaskBits, nvalid - col0);
      __syncthreads();  // the previous tile's columns are no longer read
      if (threadIdx.x < cn) cols[threadIdx.x] = nms_box(bx + static_cast<int64_t>(ord[col0 + threadIdx.x]) * 4, center);
      __syncthreads();
      if (i >= nvalid) continue;
      unsigned long long bits = 0;
      for (int j = (bxw == by ? threadIdx.x + 1 : 0); j < cn; ++j)
        if (nms_suppresses(me, cols[j], iou)) bits |= 1ull << j;
      mask[(blockIdx.z * static_cast<int64_t>(chunk) + i) * words + bxw] = bits;
    }
  }
}

// prior[row][w] bit b: chunk candidate 64*w + b is suppressed by a box kept from an earlier chunk.
// One thread per candidate; the kept boxes pass through shared memory a tile at a time.
constexpr int kPriorThreads = 256;
__global__ void nms_prior_kernel(const float* boxes, const int* order, const int* valid, const int* kept, const int* kept_count,
                                 unsigned long long* prior, int64_t n, int64_t classes, int chunk, int words, bool center,
                                 const float* iou_threshold, const int64_t* max_out, int64_t row0, int c0) {
  const int64_t row = row0 + blockIdx.y;
  const int nvalid = min(valid[row] - c0, chunk);
  const int nkept = kept_count[row];
  if (nvalid <= 0 || nkept >= nms_row_limit(max_out)) return;  // the select kernel skips this chunk too
  const float iou = iou_threshold ? *iou_threshold : 0.0f;
  const float* bx = boxes + (row / classes) * n * 4;
  const int i = blockIdx.x * kPriorThreads + threadIdx.x;
  const NmsBox me = i < nvalid ? nms_box(bx + static_cast<int64_t>(order[row * n + c0 + i]) * 4, center) : NmsBox{0, 0, 0, 0};
  bool removed = false;
  __shared__ NmsBox tile[kPriorThreads];
  for (int t0 = 0; t0 < nkept; t0 += kPriorThreads) {
    __syncthreads();
    if (t0 + static_cast<int>(threadIdx.x) < nkept) tile[threadIdx.x] = nms_box(bx + static_cast<int64_t>(kept[row * n + t0 + threadIdx.x]) * 4, center);
    __syncthreads();
    const int tn = min(kPriorThreads, nkept - t0);
    for (int j = 0; j < tn && !removed && i < nvalid; ++j) removed = nms_suppresses(tile[j], me, iou);
  }
  const unsigned bits = __ballot_sync(0xffffffffu, removed);
  __shared__ unsigned halves[kPriorThreads / 32];
  if ((threadIdx.x & 31) == 0) halves[threadIdx.x >> 5] = bits;
  __syncthreads();
  const int w = blockIdx.x * (kPriorThreads / kMaskBits) + threadIdx.x;
  if (threadIdx.x < kPriorThreads / kMaskBits && w < words)
    prior[blockIdx.y * static_cast<int64_t>(words) + w] = halves[2 * threadIdx.x] | static_cast<unsigned long long>(halves[2 * threadIdx.x + 1]) << 32;
}

// One block per row: greedy selection over a chunk's candidates, 64 at a time (one mask word).
// Per word: thread 0 walks the word's unsuppressed bits in order on registers and shared memory
// (the candidates' own mask words say which of them a kept one suppresses); then, in one round of
// loads, most threads OR the kept candidates' mask rows into the later words (each thread over a
// share of the kept rows, registers first, one shared atomic at the end) while the last 64 fetch
// the next word's own mask words. The walk is serial, so each word costs a memory round trip:
// one thread per (kept row, word) pair with an atomic each made a 1000-proposal RPN NMS take
// 0.27 ms. kept_count carries the row's count from chunk to chunk.
constexpr int kSelectThreads = 1024;
__global__ void __launch_bounds__(kSelectThreads) nms_select_kernel(const int* order, const int* valid, const unsigned long long* mask,
                                                                    const unsigned long long* prior, int* kept, int* kept_count, int64_t n,
                                                                    int chunk, int words, const int64_t* max_out, int64_t row0, int c0) {
  extern __shared__ unsigned long long removed[];
  __shared__ unsigned long long diag[2][kMaskBits];
  __shared__ int chunk_kept[kMaskBits];
  __shared__ int s_nk, s_count, s_before;
  const int64_t row = row0 + blockIdx.x;
  const int nvalid = min(valid[row] - c0, chunk);
  const int64_t limit = nms_row_limit(max_out);
  const int start = c0 > 0 ? kept_count[row] : 0;
  if (c0 > 0 && (nvalid <= 0 || start >= limit)) return;  // the mask and prior kernels skipped it as well
  const int live_words = nvalid > 0 ? (nvalid + kMaskBits - 1) / kMaskBits : 0;  // words past the candidates are never read
  const unsigned long long* m = mask + blockIdx.x * static_cast<int64_t>(chunk) * words;
  const int* ord = order + row * n + c0;
  constexpr int kPushThreads = kSelectThreads - kMaskBits;
  auto own_word = [&](int c, int t) {  // candidate 64c + t's mask word for its own word c
    return 64 * c + t < nvalid ? m[static_cast<int64_t>(64 * c + t) * words + c] : 0ull;
  };
  for (int w = threadIdx.x; w < live_words; w += blockDim.x) removed[w] = prior ? prior[blockIdx.x * static_cast<int64_t>(words) + w] : 0;
  if (threadIdx.x < kMaskBits && live_words > 0) diag[0][threadIdx.x] = own_word(0, threadIdx.x);
  if (threadIdx.x == 0) s_count = start;
  for (int c = 0; c < live_words; ++c) {
    __syncthreads();
    if (s_count >= limit) break;
    const unsigned long long* dg = diag[c & 1];
    if (threadIdx.x == 0) {
      const int base = c * kMaskBits, here = min(kMaskBits, nvalid - base);
      unsigned long long open = ~removed[c] & (here == kMaskBits ? ~0ull : (1ull << here) - 1);
      int nk = 0, count = s_count;
      s_before = count;
      while (open && count < limit) {
        const int b = __ffsll(static_cast<long long>(open)) - 1;
        chunk_kept[nk++] = base + b;
        ++count;
        open &= ~dg[b];
        open &= open - 1;  // b itself
      }
      s_nk = nk;
      s_count = count;
    }
    __syncthreads();
    const int span = live_words - c - 1, nk = s_nk;
    if (threadIdx.x >= kPushThreads) {
      if (c + 1 < live_words) diag[(c + 1) & 1][threadIdx.x - kPushThreads] = own_word(c + 1, threadIdx.x - kPushThreads);
      continue;
    }
    for (int k = threadIdx.x; k < nk; k += kPushThreads) kept[row * n + s_before + k] = ord[chunk_kept[k]];
    if (span <= 0 || nk == 0) continue;
    const int groups = span >= kPushThreads ? 1 : kPushThreads / span;
    for (int t = threadIdx.x; t < span * groups; t += kPushThreads) {
      const int w = c + 1 + t % span;
      unsigned long long acc = 0;
      for (int k = t / span; k < nk; k += groups) acc |= m[static_cast<int64_t>(chunk_kept[k]) * words + w];
      if (acc) atomicOr(&removed[w], acc);
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) kept_count[row] = s_count;
}

// Offsets of each row's kept boxes in the output and the total (the data-dependent size).
__global__ void nms_offsets_kernel(const int* kept_count, int64_t* offsets, int64_t rows, int64_t* total) {
  int64_t t = 0;
  for (int64_t r = 0; r < rows; ++r) {
    offsets[r] = t;
    t += kept_count[r];
  }
  *total = t;
}

__global__ void nms_write_kernel(const int* kept, const int* kept_count, const int64_t* offsets, int64_t* y, int64_t n, int64_t classes) {
  const int64_t row = blockIdx.x;
  const int c = kept_count[row];
  for (int j = threadIdx.x; j < c; j += blockDim.x) {
    int64_t* o = y + (offsets[row] + j) * 3;
    o[0] = row / classes;
    o[1] = row % classes;
    o[2] = kept[row * n + j];
  }
}

class NonMaxSuppressionKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>&) override {
    if (in[0].dtype != DType::Float32 || in[1].dtype != DType::Float32) fail("boxes and scores must be float32");
    Plan st;
    int64_t& batches_ = st.batches;
    int64_t& n_ = st.n;
    int64_t& classes_ = st.classes;
    int64_t& rows_ = st.rows;
    int& words_ = st.words;
    Layout& layout_ = st.layout;
    batches_ = in[0].shape[0];
    n_ = in[0].shape[1];
    classes_ = in[1].shape[1];
    rows_ = batches_ * classes_;
    if (rows_ > 65535 || rows_ * n_ > (int64_t{1} << 31) - 1)
      fail("too many boxes for the CUDA kernel (" + std::to_string(rows_) + " rows of " + std::to_string(n_) + ")");
    st.chunk = static_cast<int>(std::min<int64_t>(kChunk, (n_ + kMaskBits - 1) / kMaskBits * kMaskBits));
    words_ = st.chunk / kMaskBits;
    const size_t items = static_cast<size_t>(rows_ * n_);
    // The chunk masks of a few rows at a time (256 MiB at most): a batch's rows take turns.
    const size_t row_mask_bytes = static_cast<size_t>(st.chunk) * static_cast<size_t>(words_) * sizeof(unsigned long long);
    st.chunk_rows = std::max<int64_t>(1, std::min<int64_t>(rows_, static_cast<int64_t>((size_t{256} << 20) / std::max<size_t>(row_mask_bytes, 1))));
    const size_t mask_bytes = static_cast<size_t>(st.chunk_rows) * row_mask_bytes;
    const size_t prior_bytes = static_cast<size_t>(st.chunk_rows) * static_cast<size_t>(words_) * sizeof(unsigned long long);
    size_t cub_bytes = 0;
    int end_bit = 32;
    while (end_bit < 64 && (int64_t{1} << (end_bit - 32)) < rows_) ++end_bit;
    UNIRT_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, cub_bytes, static_cast<const unsigned long long*>(nullptr),
                                               static_cast<unsigned long long*>(nullptr), static_cast<const int*>(nullptr),
                                               static_cast<int*>(nullptr), static_cast<int>(items), 0, end_bit));
    st.end_bit = end_bit;
    // Workspace: sort keys in/out, box order in/out, row offsets, valid and kept counts, kept
    // boxes, output offsets, masks, CUB's scratch.
    layout_ = {};
    size_t at = 0;
    auto take = [&](size_t bytes) {
      const size_t p = at;
      at += (bytes + 255) / 256 * 256;
      return p;
    };
    layout_.sorted = take(2 * items * sizeof(unsigned long long));
    layout_.idx_in = take(items * sizeof(int));
    layout_.idx_out = take(items * sizeof(int));
    layout_.offsets = take((rows_ + 1) * sizeof(int));
    layout_.valid = take(rows_ * sizeof(int));
    layout_.kept_count = take(rows_ * sizeof(int));
    layout_.kept = take(items * sizeof(int));
    layout_.out_offsets = take(rows_ * sizeof(int64_t));
    layout_.total = take(sizeof(int64_t));
    layout_.mask = take(mask_bytes);
    layout_.prior = take(prior_bytes);
    layout_.cub = take(cub_bytes);
    layout_.cub_bytes = cub_bytes;
    plans_[{in[0].shape, in[1].shape}] = st;
    return at;
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    // The plan of this shape: prepare() sees every shape before run() does, in any order.
    auto it = plans_.find({in[0].shape, in[1].shape});
    if (it == plans_.end()) fail("run() for an input shape prepare() never saw");
    const Plan& st = it->second;
    const int64_t n_ = st.n, classes_ = st.classes, rows_ = st.rows;
    const int words_ = st.words;
    const Layout& layout_ = st.layout;
    cudaStream_t s = stream_of(ctx);
    char* ws = static_cast<char*>(ctx.workspace);
    int64_t* total = out.size() > 1 ? out[1].as<int64_t>() : reinterpret_cast<int64_t*>(ws + layout_.total);
    if (rows_ * n_ == 0) {
      UNIRT_CUDA(cudaMemsetAsync(total, 0, sizeof(int64_t), s));
      return;
    }
    auto at = [&](size_t off) { return ws + off; };
    auto* keys_in = reinterpret_cast<unsigned long long*>(at(layout_.sorted));
    auto* keys_out = keys_in + rows_ * n_;
    int* idx_in = reinterpret_cast<int*>(at(layout_.idx_in));
    int* idx_out = reinterpret_cast<int*>(at(layout_.idx_out));
    int* valid = reinterpret_cast<int*>(at(layout_.valid));
    int* kept_count = reinterpret_cast<int*>(at(layout_.kept_count));
    int* kept = reinterpret_cast<int*>(at(layout_.kept));
    int64_t* out_offsets = reinterpret_cast<int64_t*>(at(layout_.out_offsets));
    auto* mask = reinterpret_cast<unsigned long long*>(at(layout_.mask));
    const int64_t* max_out = has(2) && in[2].numel() ? in[2].as<int64_t>() : nullptr;
    const float* iou = has(3) && in[3].numel() ? in[3].as<float>() : nullptr;
    const float* thr = has(4) && in[4].numel() ? in[4].as<float>() : nullptr;
    if ((has(2) && in[2].dtype != DType::Int64) || (max_out && !in[2].data)) fail("max_output_boxes_per_class must be int64 in device memory");
    const int64_t items = rows_ * n_;
    nms_keys_kernel<<<grid_for(items), 256, 0, s>>>(in[1].as<float>(), keys_in, idx_in, rows_, n_);
    size_t cub_bytes = layout_.cub_bytes;
    UNIRT_CUDA(cub::DeviceRadixSort::SortPairs(at(layout_.cub), cub_bytes, keys_in, keys_out, idx_in, idx_out, static_cast<int>(items), 0,
                                               st.end_bit, s));
    nms_count_kernel<<<static_cast<unsigned>(rows_), kCountThreads, 0, s>>>(in[1].as<float>(), valid, n_, thr);
    auto* prior = reinterpret_cast<unsigned long long*>(at(layout_.prior));
    const bool center = node_.attr_i("center_point_box", 0) != 0;
    const unsigned tiles = static_cast<unsigned>(std::min(words_, kMaskGrid));
    const float* bx = in[0].as<float>();
    for (int64_t r0 = 0; r0 < rows_; r0 += st.chunk_rows) {
      const unsigned rows_now = static_cast<unsigned>(std::min(st.chunk_rows, rows_ - r0));
      for (int64_t c0 = 0; c0 < n_; c0 += st.chunk) {
        const int c = static_cast<int>(c0);
        nms_mask_kernel<<<dim3(tiles, tiles, rows_now), kMaskBits, 0, s>>>(bx, idx_out, valid, kept_count, mask, n_, classes_, st.chunk, words_,
                                                                           center, iou, max_out, r0, c);
        if (c0 > 0)
          nms_prior_kernel<<<dim3((st.chunk + kPriorThreads - 1) / kPriorThreads, rows_now), kPriorThreads, 0, s>>>(
              bx, idx_out, valid, kept, kept_count, prior, n_, classes_, st.chunk, words_, center, iou, max_out, r0, c);
        nms_select_kernel<<<rows_now, kSelectThreads, words_ * sizeof(unsigned long long), s>>>(
            idx_out, valid, mask, c0 > 0 ? prior : nullptr, kept, kept_count, n_, st.chunk, words_, max_out, r0, c);
      }
    }
    nms_offsets_kernel<<<1, 1, 0, s>>>(kept_count, out_offsets, rows_, total);
    nms_write_kernel<<<static_cast<unsigned>(rows_), 128, 0, s>>>(kept, kept_count, out_offsets, out[0].as<int64_t>(), n_, classes_);
    check_launch(node_);
  }

 private:
  struct Layout {
    size_t sorted, idx_in, idx_out, offsets, valid, kept_count, kept, out_offsets, total, mask, prior, cub, cub_bytes;
  };
  struct Plan {
    Layout layout{};
    int64_t batches = 0, n = 0, classes = 0, rows = 0, chunk_rows = 1;
    int chunk = kMaskBits, words = 0, end_bit = 64;  // candidates per chunk, mask words per chunk row
  };
  std::map<std::pair<std::vector<int64_t>, std::vector<int64_t>>, Plan> plans_;
};
UNIRT_REGISTER_KERNEL(cuda, NonMaxSuppression, NonMaxSuppressionKernel, "float32", "boxes [b, n, 4], scores [b, c, n]");

struct RoiAlignArgs {
  int64_t R, N, C, H, W, oh, ow, sampling_ratio;
  float scale;
  bool half_pixel;
};

// Batch indices out of range are clamped (never read out of bounds), as the gathers do.
template <typename T, typename R, typename I>
__global__ void roi_align_kernel(const T* x, const R* rois, const I* batch_idx, T* y, RoiAlignArgs a) {
  const int64_t total = a.R * a.C * a.oh * a.ow;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t px = i % a.ow, py = (i / a.ow) % a.oh, c = (i / (a.ow * a.oh)) % a.C, r = i / (a.ow * a.oh * a.C);
    const float roi[4] = {ld(rois, r * 4), ld(rois, r * 4 + 1), ld(rois, r * 4 + 2), ld(rois, r * 4 + 3)};
    const RoiBins b = roi_bins(roi, a.scale, a.half_pixel, a.oh, a.ow, a.sampling_ratio);
    int64_t n = static_cast<int64_t>(batch_idx[r]);
    n = n < 0 ? 0 : (n >= a.N ? a.N - 1 : n);
    const T* plane = x + (n * a.C + c) * a.H * a.W;
    st(y, i, roi_align_bin(b, py, px, a.H, a.W, [plane](int64_t k) { return ld(plane, k); }));
  }
}

struct MultiLevelArgs {
  int64_t R, N, C, oh, ow, sampling_ratio;
  int maps;
  bool half_pixel, nhwc, out_nhwc;
  const void* feat[16];
  int64_t H[16], W[16];
  float scale[16];
  double level[16];
};

template <typename T>
__device__ __forceinline__ double as_double(T v) { return static_cast<double>(v); }
__device__ __forceinline__ double as_double(__half v) { return static_cast<double>(__half2float(v)); }

template <typename T, typename R, typename I, typename L>
__global__ void multilevel_roi_align_kernel(const R* rois, const I* batch_idx, const L* level, T* y, MultiLevelArgs a) {
  const int64_t total = a.R * a.C * a.oh * a.ow;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    // NCHW maps: threads along x (output order); NHWC maps: along channels, whose taps are adjacent.
    int64_t px, py, c, r;
    if (a.nhwc) {
      c = t % a.C, px = (t / a.C) % a.ow, py = (t / (a.C * a.ow)) % a.oh, r = t / (a.C * a.ow * a.oh);
    } else {
      px = t % a.ow, py = (t / a.ow) % a.oh, c = (t / (a.ow * a.oh)) % a.C, r = t / (a.ow * a.oh * a.C);
    }
    const int64_t i = a.out_nhwc ? ((r * a.oh + py) * a.ow + px) * a.C + c : ((r * a.C + c) * a.oh + py) * a.ow + px;
    const double lv = as_double(level[r]);
    int map = -1;
    for (int m = 0; m < a.maps; ++m)
      if (lv == a.level[m]) map = m;
    if (map < 0) {  // no level matches: the masked sum it replaces is zero
      st(y, i, 0.f);
      continue;
    }
    const float roi[4] = {ld(rois, r * 4), ld(rois, r * 4 + 1), ld(rois, r * 4 + 2), ld(rois, r * 4 + 3)};
    const RoiBins b = roi_bins(roi, a.scale[map], a.half_pixel, a.oh, a.ow, a.sampling_ratio);
    int64_t n = static_cast<int64_t>(batch_idx[r]);
    n = n < 0 ? 0 : (n >= a.N ? a.N - 1 : n);
    const int64_t hw = a.H[map] * a.W[map], step = a.nhwc ? a.C : 1;
    const T* plane = static_cast<const T*>(a.feat[map]) + (a.nhwc ? n * hw * a.C + c : (n * a.C + c) * hw);
    st(y, i, roi_align_bin(b, py, px, a.H[map], a.W[map], [plane, step](int64_t k) { return ld(plane, k * step); }));
  }
}

// NHWC maps whose channels divide by the vector width: one thread per 8 float16 (or 4 float32)
// channels of one bin, 16-byte loads, the bin's sample grid worked out once for all of them.
// (One thread per channel spent most of its time on that arithmetic: 0.49 ms for the box head's
// 1000 RoIs x 256 channels.)
template <int V>
struct Lanes {
  float v[V];
  __device__ Lanes& operator+=(const Lanes& o) {
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] += o.v[k];
    return *this;
  }
};
template <int V>
__device__ __forceinline__ Lanes<V> operator+(Lanes<V> a, const Lanes<V>& b) { return a += b; }
template <int V>
__device__ __forceinline__ Lanes<V> operator*(float w, Lanes<V> a) {
#pragma unroll
  for (int k = 0; k < V; ++k) a.v[k] *= w;
  return a;
}
template <int V>
__device__ __forceinline__ Lanes<V> operator/(Lanes<V> a, float d) {
#pragma unroll
  for (int k = 0; k < V; ++k) a.v[k] /= d;
  return a;
}

template <typename T>
constexpr int kLanes = 16 / sizeof(T);

template <typename T>
__device__ __forceinline__ Lanes<kLanes<T>> load_lanes(const T* p) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
  Lanes<kLanes<T>> l;
#pragma unroll
  for (int k = 0; k < kLanes<T>; ++k) l.v[k] = ld(e, k);
  return l;
}

template <typename T, typename R, typename I, typename L>
__global__ void multilevel_roi_align_lanes_kernel(const R* rois, const I* batch_idx, const L* level, T* y, MultiLevelArgs a) {
  constexpr int V = kLanes<T>;
  const int64_t groups = a.C / V, total = a.R * groups * a.oh * a.ow;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t g = t % groups, px = (t / groups) % a.ow, py = (t / (groups * a.ow)) % a.oh, r = t / (groups * a.ow * a.oh);
    const int64_t c = g * V;
    const double lv = as_double(level[r]);
    int map = -1;
    for (int m = 0; m < a.maps; ++m)
      if (lv == a.level[m]) map = m;
    Lanes<V> v{};
    if (map >= 0) {  // no level matches: the masked sum it replaces is zero
      const float roi[4] = {ld(rois, r * 4), ld(rois, r * 4 + 1), ld(rois, r * 4 + 2), ld(rois, r * 4 + 3)};
      const RoiBins b = roi_bins(roi, a.scale[map], a.half_pixel, a.oh, a.ow, a.sampling_ratio);
      int64_t n = static_cast<int64_t>(batch_idx[r]);
      n = n < 0 ? 0 : (n >= a.N ? a.N - 1 : n);
      const T* plane = static_cast<const T*>(a.feat[map]) + n * a.H[map] * a.W[map] * a.C + c;
      const int64_t C = a.C;
      v = roi_align_bin(b, py, px, a.H[map], a.W[map], [plane, C](int64_t k) { return load_lanes(plane + k * C); });
    }
    if (a.out_nhwc) {
      T out[V];
#pragma unroll
      for (int k = 0; k < V; ++k) st(out, k, v.v[k]);
      *reinterpret_cast<uint4*>(y + ((r * a.oh + py) * a.ow + px) * a.C + c) = *reinterpret_cast<const uint4*>(out);
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) st(y, ((r * a.C + c + k) * a.oh + py) * a.ow + px, v.v[k]);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

class MultiLevelRoiAlignKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int maps = static_cast<int>(in.size()) - 3;
    if (maps < 1 || maps > 16) fail("between 1 and 16 feature maps are supported on CUDA");
    expect_floatish(in[0], "rois");
    for (int m = 0; m < maps; ++m)
      if (in[3 + m].dtype != in[3].dtype) fail("feature maps of different types");
    expect_floatish(in[3], "feature map");
    const auto scales = node_.attr_floats("spatial_scales");
    const auto levels = node_.attr_ints("levels");
    MultiLevelArgs a{};
    a.nhwc = node_.attr_s("feature_layout", "NCHW") == "NHWC";
    a.out_nhwc = node_.attr_s("output_layout", "NCHW") == "NHWC";
    a.R = in[0].shape[0], a.N = in[3].shape[0], a.C = in[3].shape[a.nhwc ? 3 : 1];
    a.oh = out[0].shape[a.out_nhwc ? 1 : 2], a.ow = out[0].shape[a.out_nhwc ? 2 : 3];
    a.sampling_ratio = node_.attr_i("sampling_ratio", 0);
    a.maps = maps;
    a.half_pixel = node_.attr_s("coordinate_transformation_mode", "half_pixel") == "half_pixel";
    for (int m = 0; m < maps; ++m) {
      a.feat[m] = in[3 + m].data;
      a.H[m] = in[3 + m].shape[a.nhwc ? 1 : 2];
      a.W[m] = in[3 + m].shape[a.nhwc ? 2 : 3];
      a.scale[m] = scales.at(m);
      a.level[m] = static_cast<double>(levels.at(m));
    }
    const int64_t total = out[0].numel();
    if (total == 0) return;
    if (a.N == 0) fail("the feature maps have batch 0 but there are RoIs to align");
    cudaStream_t s = stream_of(ctx);
    if (in[0].dtype != DType::Float32) fail("rois must be float32 (the engine keeps RoI coordinates in float32)");
    const DType bt = in[1].dtype, lt = in[2].dtype;
    if (bt != DType::Int64 && bt != DType::Int32) fail("batch_indices must be int64 or int32");
    auto launch = [&](auto xt, auto it, auto lvt) {
      using X = decltype(xt);
      using It = decltype(it);
      using Lt = decltype(lvt);
      constexpr int V = kLanes<X>;
      bool lanes = a.nhwc && a.C % V == 0 && aligned16(out[0].data);
      for (int m = 0; m < maps; ++m) lanes = lanes && aligned16(a.feat[m]);
      if (lanes)
        multilevel_roi_align_lanes_kernel<<<grid_for(total / V), 256, 0, s>>>(in[0].as<float>(), in[1].as<It>(), in[2].as<Lt>(), out[0].as<X>(), a);
      else
        multilevel_roi_align_kernel<<<grid_for(total), 256, 0, s>>>(in[0].as<float>(), in[1].as<It>(), in[2].as<Lt>(), out[0].as<X>(), a);
    };
    auto by_level = [&](auto xt, auto it) {
      switch (lt) {
        case DType::Float32: launch(xt, it, float{}); break;
        case DType::Float16: launch(xt, it, __half{}); break;
        case DType::Int64: launch(xt, it, int64_t{}); break;
        case DType::Int32: launch(xt, it, int32_t{}); break;
        default: fail(std::string("level of type ") + dtype_name(lt) + " (float or int expected)");
      }
    };
    if (in[3].dtype == DType::Float16) {
      if (bt == DType::Int64) by_level(__half{}, int64_t{});
      else by_level(__half{}, int32_t{});
    } else {
      if (bt == DType::Int64) by_level(float{}, int64_t{});
      else by_level(float{}, int32_t{});
    }
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, unirt.MultiLevelRoiAlign, MultiLevelRoiAlignKernel, "float32", "rois [r, 4] float32, feature maps NCHW or NHWC, float32 or float16");

template <bool Vec>
__global__ void box_decode_kernel(const float* rois, const float* deltas, const float* bound, float* y, int64_t boxes, BoxBroadcast bb,
                                  BoxDecodeParams p) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < boxes; b += int64_t(gridDim.x) * blockDim.x) {
    const int64_t rb = rois_box(bb, b);
    float o[4];
    if constexpr (Vec) {  // one 16-byte load or store per box
      const float4 d = reinterpret_cast<const float4*>(deltas)[b];
      const float4 r = reinterpret_cast<const float4*>(rois)[rb];
      const float dv[4] = {d.x, d.y, d.z, d.w}, rv[4] = {r.x, r.y, r.z, r.w};
      decode_box(rv, dv, p, bound, o);
      reinterpret_cast<float4*>(y)[b] = make_float4(o[0], o[1], o[2], o[3]);
    } else {
      decode_box(rois + rb * 4, deltas + b * 4, p, bound, o);
      for (int k = 0; k < 4; ++k) y[b * 4 + k] = o[k];
    }
  }
}

class BoxDecodeKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const bool has_bound = has(2);
    for (int i = 0; i < (has_bound ? 3 : 2); ++i)
      if (in[i].dtype != DType::Float32)
        fail(std::string(i == 0 ? "rois" : i == 1 ? "deltas" : "bound") + " must be float32 (box arithmetic stays float32)");
    BoxBroadcast bb;
    BoxDecodeParams p{};
    const std::string why = box_decode_setup(in[0].shape, in[1].shape, has_bound ? in[2].numel() : -1, node_.attr_floats("stds"),
                                             node_.attr_f("max_ratio", 0.f), &bb, &p);
    if (!why.empty()) fail(why);
    const float* bound = has_bound ? in[2].as<float>() : nullptr;
    const int64_t boxes = in[1].numel() / 4;
    if (boxes == 0) return;
    const bool vec = aligned16(in[0].data) && aligned16(in[1].data) && aligned16(out[0].data);
    if (vec) box_decode_kernel<true><<<grid_for(boxes), 256, 0, stream_of(ctx)>>>(in[0].as<float>(), in[1].as<float>(), bound, out[0].as<float>(), boxes, bb, p);
    else box_decode_kernel<false><<<grid_for(boxes), 256, 0, stream_of(ctx)>>>(in[0].as<float>(), in[1].as<float>(), bound, out[0].as<float>(), boxes, bb, p);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, unirt.BoxDecode, BoxDecodeKernel, "float32", "rois [..., 4] (broadcast), deltas [..., 4], bound [2]");

class RoiAlignKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "X");
    expect_floatish(in[1], "rois");
    if (in[2].dtype != DType::Int64 && in[2].dtype != DType::Int32) fail("batch_indices must be int64 or int32");
    const auto& xs = in[0].shape;
    RoiAlignArgs a{in[1].shape[0], xs[0], xs[1], xs[2], xs[3], out[0].shape[2], out[0].shape[3], node_.attr_i("sampling_ratio", 0),
                   node_.attr_f("spatial_scale", 1.f),
                   node_.attr_s("coordinate_transformation_mode", opset_ >= 16 ? "half_pixel" : "output_half_pixel") == "half_pixel"};
    const int64_t total = out[0].numel();
    if (total == 0) return;
    if (a.N == 0) fail("X has batch 0 but there are RoIs to align");
    cudaStream_t s = stream_of(ctx);
    const bool xh = in[0].dtype == DType::Float16, rh = in[1].dtype == DType::Float16, i64 = in[2].dtype == DType::Int64;
    auto launch = [&](auto xt, auto rt, auto it) {
      using X = decltype(xt);
      using Rt = decltype(rt);
      using It = decltype(it);
      roi_align_kernel<<<grid_for(total), 256, 0, s>>>(in[0].as<X>(), in[1].as<Rt>(), in[2].as<It>(), out[0].as<X>(), a);
    };
    if (xh) {
      if (rh) i64 ? launch(__half{}, __half{}, int64_t{}) : launch(__half{}, __half{}, int32_t{});
      else i64 ? launch(__half{}, float{}, int64_t{}) : launch(__half{}, float{}, int32_t{});
    } else {
      if (rh) i64 ? launch(float{}, __half{}, int64_t{}) : launch(float{}, __half{}, int32_t{});
      else i64 ? launch(float{}, float{}, int64_t{}) : launch(float{}, float{}, int32_t{});
    }
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, RoiAlign, RoiAlignKernel, "float32 float16", "X [n, c, h, w] (float16 or float32), rois [r, 4], avg mode");

}  // namespace
}  // namespace cuda
}  // namespace unirt
