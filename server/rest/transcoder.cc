#include "server/rest/transcoder.h"

#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/api/annotations.pb.h"
#include "server/rest/json_printer.h"

namespace fabric::rest {
namespace {

namespace pb = google::protobuf;

// The field `name` of `d`, by its proto name or its JSON name.
const pb::FieldDescriptor* FindField(const pb::Descriptor& d,
                                     absl::string_view name) {
  if (const pb::FieldDescriptor* f = d.FindFieldByName(std::string(name))) {
    return f;
  }
  for (int i = 0; i < d.field_count(); ++i) {
    if (d.field(i)->json_name() == name) return d.field(i);
  }
  return nullptr;
}

// Resolves a dotted field path in `message`, making the messages on the
// way; the last field and the message that holds it.
absl::StatusOr<std::pair<pb::Message*, const pb::FieldDescriptor*>> Resolve(
    pb::Message* message, absl::string_view path, absl::string_view what) {
  const std::vector<absl::string_view> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* f = FindField(*message->GetDescriptor(), parts[i]);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"", path, "\": ", message->GetDescriptor()->full_name(),
          " has no field \"", parts[i], "\""));
    }
    if (i + 1 == parts.size()) return std::make_pair(message, f);
    if (f->type() != pb::FieldDescriptor::TYPE_MESSAGE || f->is_repeated()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"", path, "\": \"", parts[i],
          "\" is not a message field, so it has no fields"));
    }
    message = message->GetReflection()->MutableMessage(message, f);
  }
  return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
}

// Sets (or, when repeated, adds) `value`, parsed by the field's type.
absl::Status SetFromText(pb::Message* m, const pb::FieldDescriptor* f,
                         absl::string_view value, absl::string_view what) {
  const pb::Reflection* r = m->GetReflection();
  const bool rep = f->is_repeated();
  auto bad = [&](absl::string_view type) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", f->name(), "\": \"", value, "\" is not ", type));
  };
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string v(value);
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES &&
          !absl::Base64Unescape(value, &v) &&
          !absl::WebSafeBase64Unescape(value, &v)) {
        return bad("base64");
      }
      rep ? r->AddString(m, f, v) : r->SetString(m, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("a 32-bit integer");
      rep ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("a 64-bit integer");
      rep ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an unsigned 32-bit integer");
      rep ? r->AddUInt32(m, f, v) : r->SetUInt32(m, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an unsigned 64-bit integer");
      rep ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
    case pb::FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!absl::SimpleAtod(value, &v)) return bad("a number");
      if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_FLOAT) {
        rep ? r->AddFloat(m, f, v) : r->SetFloat(m, f, v);
      } else {
        rep ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
      }
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (value == "true" || value == "1") {
        v = true;
      } else if (value == "false" || value == "0") {
        v = false;
      } else {
        return bad("true or false");
      }
      rep ? r->AddBool(m, f, v) : r->SetBool(m, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const pb::EnumValueDescriptor* e =
          f->enum_type()->FindValueByName(std::string(value));
      int n;
      if (e == nullptr && absl::SimpleAtoi(value, &n)) {
        e = f->enum_type()->FindValueByNumber(n);
      }
      if (e == nullptr) return bad(absl::StrCat("a ", f->enum_type()->name()));
      rep ? r->AddEnum(m, f, e) : r->SetEnum(m, f, e);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"", f->name(),
          "\" is a message; send it in the JSON body instead"));
  }
  return bad("a supported type");
}

absl::Status CheckRoute(const pb::MethodDescriptor& method, const Route& r) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("google.api.http of ", method.full_name(), ": ", why));
  };
  const pb::Descriptor& in = *method.input_type();
  if (!r.body.empty() && r.body != "*") {
    const pb::FieldDescriptor* f = in.FindFieldByName(r.body);
    if (f == nullptr || f->type() != pb::FieldDescriptor::TYPE_MESSAGE ||
        f->is_repeated()) {
      return bad(absl::StrCat("body \"", r.body,
                              "\" is not a singular message field of ",
                              in.full_name()));
    }
  }
  for (const std::string& field : r.path.Fields()) {
    const pb::Descriptor* d = &in;
    const pb::FieldDescriptor* f = nullptr;
    for (absl::string_view part : absl::StrSplit(field, '.')) {
      f = d == nullptr ? nullptr : d->FindFieldByName(std::string(part));
      if (f == nullptr) break;
      d = f->message_type();
    }
    if (f == nullptr || f->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING ||
        f->is_repeated()) {
      return bad(absl::StrCat("path variable \"", field,
                              "\" is not a singular string field of ",
                              in.full_name()));
    }
  }
  return absl::OkStatus();
}

absl::Status AddRule(const pb::MethodDescriptor& method,
                     const google::api::HttpRule& rule,
                     std::vector<Route>* out) {
  Route r;
  std::string path;
  switch (rule.pattern_case()) {
    case google::api::HttpRule::kGet:
      r.http_method = "GET", path = rule.get();
      break;
    case google::api::HttpRule::kPut:
      r.http_method = "PUT", path = rule.put();
      break;
    case google::api::HttpRule::kPost:
      r.http_method = "POST", path = rule.post();
      break;
    case google::api::HttpRule::kDelete:
      r.http_method = "DELETE", path = rule.delete_();
      break;
    case google::api::HttpRule::kPatch:
      r.http_method = "PATCH", path = rule.patch();
      break;
    case google::api::HttpRule::kCustom:
      r.http_method = absl::AsciiStrToUpper(rule.custom().kind());
      path = rule.custom().path();
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "google.api.http of ", method.full_name(), " has no pattern"));
  }
  absl::StatusOr<PathTemplate> t = PathTemplate::Parse(path);
  if (!t.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "google.api.http of ", method.full_name(), ": ", t.status().message()));
  }
  r.path = *std::move(t);
  r.body = rule.body();
  r.method = &method;
  r.grpc_method =
      absl::StrCat("/", method.service()->full_name(), "/", method.name());
  if (absl::Status s = CheckRoute(method, r); !s.ok()) return s;
  out->push_back(std::move(r));
  for (const google::api::HttpRule& more : rule.additional_bindings()) {
    if (absl::Status s = AddRule(method, more, out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Transcoder> Transcoder::ForService(
    const pb::ServiceDescriptor& service) {
  Transcoder t;
  for (int i = 0; i < service.method_count(); ++i) {
    const pb::MethodDescriptor& m = *service.method(i);
    if (!m.options().HasExtension(google::api::http)) continue;
    if (absl::Status s =
            AddRule(m, m.options().GetExtension(google::api::http), &t.routes_);
        !s.ok()) {
      return s;
    }
  }
  // A route with a verb first: "/v1/{node=nodes/*}:watchOffers" before
  // "/v1/{name=nodes/*}", which would take "nodes/n1:watchOffers" whole.
  std::stable_sort(t.routes_.begin(), t.routes_.end(),
                   [](const Route& a, const Route& b) {
                     return !a.path.verb().empty() && b.path.verb().empty();
                   });
  return t;
}

const Route* Transcoder::Find(absl::string_view http_method,
                              absl::string_view path, Bindings* bindings,
                              NoRoute* why) const {
  *why = NoRoute::kNotFound;
  for (const Route& r : routes_) {
    std::optional<Bindings> b = r.path.Match(path);
    if (!b.has_value()) continue;
    if (r.http_method != http_method) {
      *why = NoRoute::kMethodNotAllowed;
      continue;
    }
    *bindings = *std::move(b);
    return &r;
  }
  return nullptr;
}

absl::StatusOr<PreparedCall> Transcoder::Prepare(
    const Route& route, const Bindings& bindings,
    const std::multimap<std::string, std::string>& query,
    absl::string_view body) const {
  const pb::Message* prototype =
      pb::MessageFactory::generated_factory()->GetPrototype(
          route.method->input_type());
  PreparedCall call;
  call.route = &route;
  call.request.reset(prototype->New());
  pb::Message* request = call.request.get();

  // 1. The body.
  pb::util::JsonParseOptions json;
  json.ignore_unknown_fields = false;
  const bool has_body =
      !absl::StripAsciiWhitespace(body).empty();
  std::set<std::string> bound;  // top-level fields set by the body or path
  if (route.body.empty()) {
    if (has_body) {
      return absl::InvalidArgumentError(absl::StrCat(
          route.http_method, " ", route.path.text(),
          " takes no body; send its fields as query parameters"));
    }
  } else {
    pb::Message* target = request;
    if (route.body != "*") {
      const pb::FieldDescriptor* f =
          request->GetDescriptor()->FindFieldByName(route.body);
      target = request->GetReflection()->MutableMessage(request, f);
      bound.insert(route.body);
    }
    if (has_body) {
      pb::util::Status s = pb::util::JsonStringToMessage(
          std::string(body), target, json);
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the JSON body is not a valid ", target->GetDescriptor()->full_name(),
            ": ", s.message().as_string()));
      }
    }
  }
  for (const auto& [field, value] : bindings) {
    bound.insert(std::string(field.substr(0, field.find('.'))));
  }

  // 2. The query string.
  for (const auto& [name, value] : query) {
    absl::StatusOr<std::pair<pb::Message*, const pb::FieldDescriptor*>> f =
        Resolve(request, name, "query parameter");
    if (!f.ok()) return f.status();
    const std::string top(absl::string_view(name).substr(0, name.find('.')));
    const pb::FieldDescriptor* top_field =
        FindField(*request->GetDescriptor(), top);
    if (route.body == "*" ||
        (top_field != nullptr && bound.count(top_field->name()) > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter \"", name, "\" is bound by the ",
          route.body == "*" ? "body" : "path or the body", " of ",
          route.http_method, " ", route.path.text()));
    }
    if (absl::Status s = SetFromText(f->first, f->second, value,
                                     "query parameter");
        !s.ok()) {
      return s;
    }
  }

  // 3. The path, last.
  for (const auto& [field, value] : bindings) {
    absl::StatusOr<std::pair<pb::Message*, const pb::FieldDescriptor*>> f =
        Resolve(request, field, "path variable");
    if (!f.ok()) return f.status();
    f->first->GetReflection()->SetString(f->first, f->second, value);
  }
  return call;
}

absl::StatusOr<std::string> Transcoder::ToJson(const pb::Message& message) {
  std::string out;
  absl::Status printed = PrintJson(message, &out);
  if (printed.code() == absl::StatusCode::kUnimplemented) {
    // A well-known type JsonPrinter leaves to protobuf's printer.
    pb::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    options.always_print_enums_as_ints = false;
    out.clear();
    pb::util::Status s = pb::util::MessageToJsonString(message, &out, options);
    printed = s.ok() ? absl::OkStatus()
                     : absl::InvalidArgumentError(s.message().as_string());
  }
  if (!printed.ok()) {
    return absl::InternalError(absl::StrCat(
        "cannot print ", message.GetDescriptor()->full_name(), " as JSON: ",
        printed.message()));
  }
  return out;
}

}  // namespace fabric::rest
