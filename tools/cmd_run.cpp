// unirt run MODEL --input NAME=FILE.npy ... | --image FILE [--output-dir DIR]: writes DIR/<output>.npy.
#include <cstdio>
#include <filesystem>
#include <set>

#include "cli.h"
#include "npy.h"

namespace unirt::cli {

void add_run_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    std::string model, out_dir = ".", image, shapes;
    std::vector<std::string> inputs;
    int size = 224;
    uint32_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("run", "run a model on inputs (.npy or an image); write every output as .npy");
  c->add_option("model", o->model, "engine or ONNX file")->required();
  c->add_option("--input", o->inputs, "NAME=FILE.npy (repeatable)");
  c->add_option("--image", o->image, "image file for the first input (ImageNet preprocessing)");
  c->add_option("--size", o->size, "image crop size")->check(CLI::Range(1, 8192));
  c->add_option("--shapes", o->shapes, "random inputs of these shapes when neither --input nor --image is given");
  c->add_option("--seed", o->seed, "seed of the random inputs");
  c->add_option("--output-dir", o->out_dir, "where to write <output>.npy");
  add_common(c, o->common);
  r.actions[c] = [o] {
    auto e = load(o->model, o->common);
    Session sess(e, make_backend(e->options.backend, o->common.threads), SessionOptions{o->common.threads});
    auto outs = sess.run(gather_inputs(*e, o->inputs, o->image, o->size, o->shapes, o->seed));
    std::filesystem::create_directories(o->out_dir);
    std::set<std::string> used;
    for (const auto& out : outs) {
      const HostTensor& t = out;  // in its own type: a float16 or float64 output is written as such
      // Two names may sanitise alike ('a/b' and 'a_b'): the later one gets a suffix, none is lost.
      std::string file = sanitize(t.name);
      for (int k = 1; used.count(file); ++k) file = sanitize(t.name) + "_" + std::to_string(k);
      used.insert(file);
      const std::string path = (std::filesystem::path(o->out_dir) / (file + ".npy")).string();
      write_npy(path, t);
      std::printf("%s %s %s -> %s\n", t.name.c_str(), dtype_name(t.dtype), dims_text(t.shape).c_str(), path.c_str());
    }
    return 0;
  };
}

}  // namespace unirt::cli
