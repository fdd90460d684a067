#include "server/rest/rest_gateway.h"

#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/security/grpc_auth.h"
#include "common/stream_metadata.h"

namespace fabric::rest {
namespace {

namespace pb = google::protobuf;

constexpr char kJson[] = "application/json";
constexpr char kNdjson[] = "application/x-ndjson";

grpc::ByteBuffer ToBuffer(const pb::Message& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

bool FromBuffer(const grpc::ByteBuffer& buffer, pb::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return message->ParseFromString(bytes);
}

std::unique_ptr<pb::Message> NewResponse(const Route& route) {
  return std::unique_ptr<pb::Message>(
      pb::MessageFactory::generated_factory()
          ->GetPrototype(route.method->output_type())
          ->New());
}

// How often a stream waiting for its next message checks that its HTTP
// client is still connected.
constexpr absl::Duration kClientCheck = absl::Seconds(1);

// Waits for the one operation in flight on `cq`; its ok bit.
bool Await(grpc::CompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  return cq->Next(&tag, &ok) && ok;
}

http::HttpResponse ErrorResponse(grpc::StatusCode code,
                                 absl::string_view message) {
  return http::HttpResponse::Text(HttpStatusOf(code), kJson,
                                  StatusJson(code, message));
}

grpc::StatusCode CodeOf(const absl::Status& s) {
  return static_cast<grpc::StatusCode>(s.code());
}

// The manager's own metadata ("fabric-..."), as Grpc-Metadata-<key>.
void CopyMetadata(const grpc::ClientContext& context,
                  http::HttpResponse* response) {
  auto copy = [&](const std::multimap<grpc::string_ref, grpc::string_ref>& md) {
    for (const auto& [k, v] : md) {
      const absl::string_view key(k.data(), k.size());
      if (!absl::StartsWith(key, "fabric-")) continue;
      response->headers.emplace(absl::StrCat("Grpc-Metadata-", key),
                                std::string(v.data(), v.size()));
    }
  };
  copy(context.GetServerInitialMetadata());
  copy(context.GetServerTrailingMetadata());
}

}  // namespace

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::CANCELLED: return 499;
    case grpc::StatusCode::UNKNOWN: return 500;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS: return 409;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::FAILED_PRECONDITION: return 400;
    case grpc::StatusCode::ABORTED: return 409;
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::INTERNAL: return 500;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DATA_LOSS: return 500;
    default: return 500;
  }
}

std::string StatusJson(grpc::StatusCode code, absl::string_view message) {
  nlohmann::json status = {{"code", static_cast<int>(code)},
                           {"message", std::string(message)},
                           {"details", nlohmann::json::array()}};
  return status.dump(-1, ' ', false,
                     nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::unique_ptr<RestGateway>> RestGateway::Create(
    const pb::ServiceDescriptor& service, ChannelSource channels,
    RestGatewayOptions options) {
  if (!options.insecure && options.policy == nullptr) {
    return absl::InvalidArgumentError(
        "a REST gateway over TLS needs the policy it checks calls against");
  }
  absl::StatusOr<Transcoder> transcoder = Transcoder::ForService(service);
  if (!transcoder.ok()) return transcoder.status();
  auto gateway = std::unique_ptr<RestGateway>(new RestGateway(
      *std::move(transcoder), std::move(channels), std::move(options)));
  const std::string openapi = gateway->options_.openapi_json;
  gateway->AddHandler("/openapi.json", [openapi](const http::HttpRequest&) {
    return http::HttpResponse::Text(200, kJson, openapi);
  });
  return gateway;
}

void RestGateway::AddHandler(const std::string& path,
                             http::HttpHandler handler) {
  handlers_[path] = std::move(handler);
}

bool RestGateway::Register(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  open_.insert(context);
  return true;
}

void RestGateway::Unregister(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  open_.erase(context);
}

size_t RestGateway::open_calls() {
  absl::MutexLock lock(&mu_);
  return open_.size();
}

void RestGateway::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (grpc::ClientContext* context : open_) context->TryCancel();
}

http::HttpResponse RestGateway::Handle(const http::HttpRequest& request) {
  if (request.method == "GET") {
    auto it = handlers_.find(request.path);
    if (it != handlers_.end()) return it->second(request);
  }
  Bindings bindings;
  NoRoute why;
  const Route* route =
      transcoder_.Find(request.method, request.path, &bindings, &why);
  if (route == nullptr) {
    http::HttpResponse r = ErrorResponse(
        grpc::StatusCode::NOT_FOUND,
        absl::StrCat(why == NoRoute::kMethodNotAllowed
                         ? "method not allowed: "
                         : "no such route: ",
                     request.method, " ", request.path,
                     "; the routes are in /openapi.json"));
    if (why == NoRoute::kMethodNotAllowed) r.status = 405;
    return r;
  }

  // The one policy check, as for gRPC.
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.insecure) {
    absl::StatusOr<security::Decision> decision = security::AdmitCall(
        *options_.policy, options_.audit, request.peer, route->grpc_method);
    if (!decision.ok()) {
      return ErrorResponse(CodeOf(decision.status()),
                           decision.status().message());
    }
    context->AddMetadata(
        security::kVouchedCallerKey,
        security::VouchedCallerValue(
            *request.peer, decision->role,
            options_.policy->RoleScope(decision->role)));
  }

  absl::StatusOr<PreparedCall> call =
      transcoder_.Prepare(*route, bindings, request.query, request.body);
  if (!call.ok()) {
    return ErrorResponse(CodeOf(call.status()), call.status().message());
  }
  std::shared_ptr<grpc::Channel> channel = channels_();
  if (channel == nullptr) {
    return ErrorResponse(grpc::StatusCode::UNAVAILABLE,
                         "the manager is not serving yet");
  }
  if (route->method->server_streaming()) {
    return ServerStream(*std::move(call), std::move(context), channel);
  }
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  return Unary(*call, std::move(context), channel);
}

http::HttpResponse RestGateway::Unary(
    const PreparedCall& call, std::unique_ptr<grpc::ClientContext> context,
    const std::shared_ptr<grpc::Channel>& channel) {
  if (!Register(context.get())) {
    return ErrorResponse(grpc::StatusCode::UNAVAILABLE,
                         "the manager is shutting down");
  }
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ByteBuffer reply;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> rpc =
      stub.PrepareUnaryCall(context.get(), call.route->grpc_method,
                            ToBuffer(*call.request), &cq);
  rpc->StartCall();
  rpc->Finish(&reply, &status, nullptr);
  Await(&cq);
  Unregister(context.get());
  cq.Shutdown();
  while (Await(&cq)) {
  }

  http::HttpResponse response;
  if (status.ok()) {
    std::unique_ptr<pb::Message> message = NewResponse(*call.route);
    absl::StatusOr<std::string> json =
        FromBuffer(reply, message.get())
            ? Transcoder::ToJson(*message)
            : absl::InternalError("the manager's reply does not parse");
    response = json.ok() ? http::HttpResponse::Text(200, kJson, *json)
                         : ErrorResponse(CodeOf(json.status()),
                                         json.status().message());
  } else {
    response = ErrorResponse(status.error_code(), status.error_message());
  }
  CopyMetadata(*context, &response);
  return response;
}

// One server-streaming call, from its first message on; owned by the
// response's stream function.
struct RestGateway::Stream {
  RestGateway* gateway = nullptr;
  const Route* route = nullptr;
  std::unique_ptr<grpc::ClientContext> context;
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> rpc;
  grpc::ByteBuffer buffer;
  bool started = false;   // StartCall was called
  bool finished = false;  // Finish was called

  // The next message into `buffer`; false at the stream's end.
  bool Read() {
    rpc->Read(&buffer, nullptr);
    return Await(&cq);
  }
  // Read, for a stream being sent: while no message comes, asks `write`
  // every kClientCheck whether the HTTP client is still there (an empty
  // chunk, ChunkWriter), and cancels the call once it is not, so that a
  // client that left a quiet Watch frees its call and its HTTP thread.
  bool ReadWhileConnected(const http::ChunkWriter& write) {
    rpc->Read(&buffer, nullptr);
    bool cancelled = false;
    for (;;) {
      void* tag = nullptr;
      bool ok = false;
      switch (cq.AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() +
                                                          kClientCheck))) {
        case grpc::CompletionQueue::GOT_EVENT:
          return ok;
        case grpc::CompletionQueue::SHUTDOWN:
          return false;
        case grpc::CompletionQueue::TIMEOUT:
          if (!cancelled && !write("")) {
            context->TryCancel();  // the read then ends, not ok
            cancelled = true;
          }
          break;
      }
    }
  }
  grpc::Status Finish() {
    grpc::Status status;
    rpc->Finish(&status, nullptr);
    Await(&cq);
    finished = true;
    return status;
  }
  ~Stream() {
    // A response dropped before its stream ran (the client left first):
    // the call is ended here, before its queue goes.
    if (started && !finished) {
      context->TryCancel();
      while (Read()) {
      }
      Finish();
    }
    gateway->Unregister(context.get());
    cq.Shutdown();
    while (Await(&cq)) {
    }
  }
};

http::HttpResponse RestGateway::ServerStream(
    PreparedCall call, std::unique_ptr<grpc::ClientContext> context,
    const std::shared_ptr<grpc::Channel>& channel) {
  auto stream = std::make_shared<Stream>();
  stream->gateway = this;
  stream->route = call.route;
  stream->context = std::move(context);
  if (!Register(stream->context.get())) {
    return ErrorResponse(grpc::StatusCode::UNAVAILABLE,
                         "the manager is shutting down");
  }
  grpc::GenericStub stub(channel);
  stream->rpc = stub.PrepareCall(stream->context.get(), call.route->grpc_method,
                                 &stream->cq);
  stream->rpc->StartCall(nullptr);
  stream->started = true;
  bool ok = Await(&stream->cq);
  if (ok) {
    stream->rpc->Write(ToBuffer(*call.request), nullptr);
    ok = Await(&stream->cq);
  }
  if (ok) {
    stream->rpc->WritesDone(nullptr);
    ok = Await(&stream->cq);
  }
  if (ok) {
    stream->rpc->ReadInitialMetadata(nullptr);
    ok = Await(&stream->cq);
  }
  // An accepted stream says so at once (kStreamOpenKey); a refused one
  // ends with its status, which is then an ordinary error response. A
  // stream without the key is taken as open once it sends a message.
  const bool open =
      ok && stream->context->GetServerInitialMetadata().count(kStreamOpenKey) > 0;
  bool first = false;
  if (!open && !(ok && (first = stream->Read()))) {
    grpc::Status status = stream->Finish();
    if (status.ok()) {
      status = grpc::Status(grpc::StatusCode::INTERNAL,
                            "the stream ended before its first message");
    }
    http::HttpResponse r =
        ErrorResponse(status.error_code(), status.error_message());
    CopyMetadata(*stream->context, &r);
    return r;
  }
  http::HttpResponse response;
  response.content_type = kNdjson;
  response.stream = [stream, first](const http::ChunkWriter& write) {
    std::unique_ptr<pb::Message> message = NewResponse(*stream->route);
    bool more = first || stream->ReadWhileConnected(write);
    while (more) {
      message->Clear();
      absl::StatusOr<std::string> json =
          FromBuffer(stream->buffer, message.get())
              ? Transcoder::ToJson(*message)
              : absl::InternalError("a streamed message does not parse");
      if (!json.ok() ||
          !write(absl::StrCat("{\"result\":", *json, "}\n"))) {
        stream->context->TryCancel();  // the client is gone
        while (stream->Read()) {
        }
        stream->Finish();
        return;
      }
      more = stream->ReadWhileConnected(write);
    }
    const grpc::Status status = stream->Finish();
    if (!status.ok()) {
      write(absl::StrCat("{\"error\":",
                         StatusJson(status.error_code(), status.error_message()),
                         "}\n"));
    }
  };
  return response;
}

}  // namespace fabric::rest
