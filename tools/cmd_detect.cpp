// unirt detect ENGINE IMAGE... [-o OUT.png|DIR] [--json FILE]: Mask R-CNN end to end. mmdetection's
// preprocessing here (keep-ratio resize to 1333x800, normalise, pad to 32; several images form
// one batch), the engine, then boxes rescaled to each original image and masks pasted at full
// resolution; prints the detections and the time of each step.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "detection.h"
#include "ir/file.h"
#include "npy.h"

namespace unirt::cli {

namespace {

// COCO's category ids of the 80 classes, in label order.
const int kCocoIds[80] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31,
                          32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
                          60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void add_detect_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    std::string model, labels, json, output, save_input, category_ids;
    std::vector<std::string> images;
    std::vector<int64_t> image_ids;
    float score_thr = 0.3f, mask_thr = 0.5f;
    int long_edge = 1333, short_edge = 800, divisor = 32, batch = 0;
    const char* argv0 = "unirt";
  };
  auto o = std::make_shared<Opts>();
  o->argv0 = r.argv0;
  auto* c = app.add_subcommand("detect", "images -> boxes, labels, scores and instance masks (Mask R-CNN engines)");
  c->add_option("model", o->model, "engine or ONNX file with outputs dets, labels, masks, num_dets")->required();
  c->add_option("images", o->images, "image files (JPEG, PNG, BMP); several run as one batch")->required();
  c->add_option("-o,--output", o->output, "draw the detections: a .png for one image, else a folder (one <image>.png each)");
  c->add_option("--json", o->json, "write the detections in COCO results format (bbox [x, y, w, h], RLE segmentation)");
  c->add_option("--score-thr", o->score_thr, "keep detections scoring at least this (COCO evaluation: 0)")->check(CLI::Range(0.f, 1.f));
  c->add_option("--mask-thr", o->mask_thr, "mask probability threshold (mmdetection's mask_thr_binary)")->check(CLI::Range(0.f, 1.f));
  c->add_option("--labels", o->labels, "class names, one per line (default: assets/coco_labels.txt)");
  c->add_option("--category-ids", o->category_ids, "category id of each label, comma-separated (default: COCO's 80)");
  c->add_option("--image-ids", o->image_ids, "image_id of each image in the JSON (default: 0, 1, ...)");
  c->add_option("--long-edge", o->long_edge, "resize: the long edge at most this")->check(CLI::Range(1, 8192));
  c->add_option("--short-edge", o->short_edge, "resize: the short edge at most this")->check(CLI::Range(1, 8192));
  c->add_option("--size-divisor", o->divisor, "pad height and width to a multiple of this")->check(CLI::Range(1, 1024));
  c->add_option("--save-input", o->save_input, "also write the preprocessed input tensor (.npy; the first batch)");
  c->add_option("--batch", o->batch, "images per engine run (0: as many as the engine's profile allows, all of them if it sets no bound)")->check(CLI::Range(0, 1 << 20));
  add_common(c, o->common);
  r.actions[c] = [o] {
    if (!o->image_ids.empty() && o->image_ids.size() != o->images.size())
      throw Error("--image-ids gives " + std::to_string(o->image_ids.size()) + " ids for " + std::to_string(o->images.size()) + " images");
    auto e = load(o->model, o->common);
    if (e->graph.inputs.size() != 1) throw Error("detect needs an engine with one input (the image batch), this one has " + std::to_string(e->graph.inputs.size()));
    const std::string input_name = e->graph.value(e->graph.inputs[0]).name;
    // Labels and category ids.
    const std::string label_path = o->labels.empty() ? repo_file(o->argv0, "assets/coco_labels.txt") : o->labels;
    const std::vector<std::string> names = read_labels(label_path, !o->labels.empty());
    std::vector<int> cat_ids(kCocoIds, kCocoIds + 80);
    if (!o->category_ids.empty()) {
      cat_ids.clear();
      std::stringstream ss(o->category_ids);
      for (std::string tok; std::getline(ss, tok, ',');) {
        try {
          cat_ids.push_back(std::stoi(tok));
        } catch (const std::exception&) {
          throw Error("--category-ids: '" + tok + "' is not an integer");
        }
      }
    }
    DetPreprocessOptions po;
    po.long_edge = o->long_edge;
    po.short_edge = o->short_edge;
    po.size_divisor = o->divisor;
    Session sess(e, make_backend(e->options.backend, o->common.threads), SessionOptions{o->common.threads});
    std::vector<std::string> out_names;
    for (int v : e->graph.outputs) out_names.push_back(e->graph.value(v).name);
    std::fputs(random_weights_note(*e, "detections").c_str(), stdout);
    nlohmann::json results = nlohmann::json::array();
    double decode_ms = 0, pre_ms = 0, infer_ms = 0, paste_ms = 0, draw_ms = 0;
    // By default as many images per run as the engine's profile takes (all of them if it sets no bound).
    size_t per_run = o->images.size();
    auto max_shape = e->options.profile.max.find(input_name);
    if (max_shape != e->options.profile.max.end() && !max_shape->second.empty() && max_shape->second[0] > 0)
      per_run = std::min(per_run, static_cast<size_t>(max_shape->second[0]));
    if (o->batch > 0) per_run = static_cast<size_t>(o->batch);
    const bool one_file = o->images.size() == 1 && std::filesystem::path(o->output).extension() == ".png";
    if (!o->output.empty() && !one_file) std::filesystem::create_directories(o->output);
    std::string shapes_run;
    for (size_t first = 0; first < o->images.size(); first += per_run) {
      const size_t count = std::min(per_run, o->images.size() - first);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<RgbImage> images;
      for (size_t i = first; i < first + count; ++i) images.push_back(decode_rgb(read_file(o->images[i], "image"), o->images[i]));
      decode_ms += ms_since(t0);
      const auto t1 = std::chrono::steady_clock::now();
      std::vector<DetImageMeta> metas;
      HostTensor x = preprocess_detection(images, input_name, po, &metas);
      pre_ms += ms_since(t1);
      if (!o->save_input.empty() && first == 0) write_npy(o->save_input, x);
      shapes_run += (shapes_run.empty() ? "" : " ") + dims_text(x.shape);
      // On CUDA the first run of a shape plans it and captures its CUDA graphs: warm it up so the
      // time printed is the inference's. The CPU plans in microseconds.
      if (e->options.backend == "cuda") sess.run({x});
      const auto t2 = std::chrono::steady_clock::now();
      std::vector<HostTensor> out = sess.run({x});
      infer_ms += ms_since(t2);
      const auto t3 = std::chrono::steady_clock::now();
      int64_t nan_boxes = 0;
      const auto dets = decode_detections(out, out_names, metas, o->score_thr, o->mask_thr, &nan_boxes);
      if (nan_boxes)
        std::fprintf(stderr, "warning: %lld detection(s) with NaN box coordinates left out (the engine's dets output holds NaN)\n",
                     static_cast<long long>(nan_boxes));
      paste_ms += ms_since(t3);
      for (size_t k = 0; k < count; ++k) {
        const size_t i = first + k;
        std::printf("%s: %zu detections (score >= %.2f), %dx%d resized to %dx%d\n", o->images[i].c_str(), dets[k].size(), o->score_thr,
                    metas[k].ori_w, metas[k].ori_h, metas[k].new_w, metas[k].new_h);
        for (const Detection& d : dets[k]) {
          const std::string name = d.label >= 0 && d.label < static_cast<int>(names.size()) ? names[d.label] : std::to_string(d.label);
          const size_t area = d.mask.area();
          std::printf("  %-16s %.3f  box %7.1f %7.1f %7.1f %7.1f  mask %zu px\n", name.c_str(), d.score, d.x0, d.y0, d.x1, d.y1, area);
          if (o->json.empty()) continue;
          nlohmann::json j;
          j["image_id"] = o->image_ids.empty() ? static_cast<int64_t>(i) : o->image_ids[i];
          if (d.label < 0 || d.label >= static_cast<int>(cat_ids.size()))
            throw Error("label " + std::to_string(d.label) + " has no category id (--category-ids gives " + std::to_string(cat_ids.size()) + ")");
          j["category_id"] = cat_ids[d.label];
          j["bbox"] = {d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0};
          j["score"] = d.score;
          if (!d.mask.empty())
            j["segmentation"] = {{"size", {metas[k].ori_h, metas[k].ori_w}}, {"counts", coco_rle(d.mask)}};
          results.push_back(std::move(j));
        }
        if (!o->output.empty()) {
          const auto t4 = std::chrono::steady_clock::now();
          RgbImage canvas = images[k];
          draw_detections(canvas, dets[k], names);
          const std::string path =
              one_file ? o->output : (std::filesystem::path(o->output) / (std::filesystem::path(o->images[i]).stem().string() + ".png")).string();
          write_png(canvas, path);
          draw_ms += ms_since(t4);
          std::printf("wrote %s\n", path.c_str());
        }
      }
    }
    if (!o->json.empty()) {
      std::ofstream f(o->json);
      if (!f) throw Error("cannot write '" + o->json + "'");
      f << results.dump() << "\n";
      std::printf("wrote %s (%zu detections)\n", o->json.c_str(), results.size());
    }
    std::printf("time: decode %.1f ms, preprocess %.1f ms, inference %.2f ms (%s; %s, %s), boxes + mask paste %.1f ms, drawing %.1f ms\n",
                decode_ms, pre_ms, infer_ms, shapes_run.c_str(), e->options.backend.c_str(), precision_name(e->options.precision), paste_ms,
                draw_ms);
    return 0;
  };
}

}  // namespace unirt::cli
