// `unirt serve`: the KServe v2 HTTP/REST protocol (Triton's dialect, binary tensor extension
// included) over cpp-httplib, one dynamic batcher per model version, a classify endpoint, a web
// page and Prometheus metrics.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "batcher.h"

namespace httplib {
class Server;
}

namespace unirt {

struct ServedModel {
  std::string name, version, path;
  std::shared_ptr<Engine> engine;
  std::unique_ptr<DynamicBatcher> batcher;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  size_t max_request_bytes = size_t{256} << 20;
  int http_threads = 256;  // concurrent connections being served (each waits for its batch)
  BatcherOptions batching;
  std::string backend = "auto";
  int threads = 0;  // CPU backend threads per instance
  bool warmup = true;  // prepare every batch size before serving (DynamicBatcher::warm_up)
};

// name/version/*.engine folders (Triton's layout: the highest version is the default), or
// name/*.engine (version 1); explicit NAME[:VERSION]=FILE specs are added to what it finds.
std::vector<std::pair<std::string, std::pair<std::string, std::string>>> scan_model_repository(const std::string& dir);

class InferenceServer {
 public:
  explicit InferenceServer(ServerOptions o);
  ~InferenceServer();
  void add_model(const std::string& name, const std::string& version, const std::string& engine_path);
  // Binds (port 0: any free port) and returns the port; serve() then blocks until stop().
  int bind();
  void serve();
  // Stops accepting connections, finishes the requests in flight, drains every batcher.
  void stop();
  bool ready() const;

  // Protocol pieces, public for tests: a KServe v2 infer body (JSON, or JSON header + binary
  // tensors) to the model's inputs; throws Error naming what is wrong.
  static std::vector<HostTensor> parse_infer_request(const std::string& body, size_t header_length, const Engine& e,
                                                     nlohmann::json* request);
  // Outputs to a response body; *header_length > 0 when binary tensors follow the JSON.
  static std::string make_infer_response(const nlohmann::json& request, const std::vector<HostTensor>& outputs, const std::string& model,
                                         const std::string& version, size_t* header_length);
  std::string metrics_text() const;

 private:
  ServedModel* find(const std::string& name, const std::string& version, std::string* why);
  void routes();
  ServerOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  std::map<std::string, std::map<std::string, std::unique_ptr<ServedModel>>> models_;  // name -> version -> model
  std::atomic<bool> stopping_{false};
};

// KServe datatype names ("FP32", "INT64", ...) to and from unirt's.
const char* kserve_datatype(DType t);
DType parse_kserve_datatype(const std::string& s, const std::string& what);

}  // namespace unirt
