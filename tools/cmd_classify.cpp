// unirt classify MODEL IMAGE [--labels FILE] [--size N]: top-5 ImageNet classes and latency.
#include <chrono>
#include <cstdio>

#include "cli.h"

namespace unirt::cli {

void add_classify_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    std::string model, image, labels;
    int size = 224, runs = 10;
    const char* argv0 = "unirt";
  };
  auto o = std::make_shared<Opts>();
  o->argv0 = r.argv0;
  auto* c = app.add_subcommand("classify", "image -> top-5 ImageNet classes");
  c->add_option("model", o->model, "engine or ONNX file")->required();
  c->add_option("image", o->image, "image file (JPEG, PNG, BMP, ...)")->required();
  c->add_option("--labels", o->labels, "one label per line (default: assets/imagenet_labels.txt)");
  c->add_option("--size", o->size, "crop size (the shorter side is resized to size*256/224 first)")->check(CLI::Range(1, 8192));
  c->add_option("--runs", o->runs, "timed runs for the latency figure")->check(CLI::Range(1, 100000));
  add_common(c, o->common);
  r.actions[c] = [o] {
    auto e = load(o->model, o->common);
    Session sess(e, make_backend(e->options.backend, o->common.threads), SessionOptions{o->common.threads});
    const auto in = gather_inputs(*e, {}, o->image, o->size, "", 0);
    std::vector<HostTensor> out = sess.run(in);  // first run plans memory for this shape
    std::vector<double> ms;
    for (int i = 0; i < o->runs; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      out = sess.run(in);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    const std::string label_path = o->labels.empty() ? repo_file(o->argv0, "assets/imagenet_labels.txt") : o->labels;
    const auto top = top_classes(out.at(0), 5, read_labels(label_path, !o->labels.empty()));
    std::fputs(random_weights_note(*e, "classes").c_str(), stdout);
    std::printf("top-%zu for %s (%s, %s):\n", top.size(), o->image.c_str(), e->options.backend.c_str(), precision_name(e->options.precision));
    for (const ClassScore& c : top) std::printf("  %6.2f%%  %4lld  %s\n", 100 * c.probability, static_cast<long long>(c.index), c.label.c_str());
    std::printf("latency: median %.3f ms over %d runs (1x3x%dx%d, host to host)\n", percentile(ms, 50), o->runs, o->size, o->size);
    return 0;
  };
}

}  // namespace unirt::cli
