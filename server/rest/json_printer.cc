#include "server/rest/json_printer.h"

#include <google/protobuf/descriptor.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace fabric::rest {
namespace {

namespace pb = google::protobuf;
using Cpp = pb::FieldDescriptor::CppType;

// The ranges of the canonical mapping (google/protobuf/timestamp.proto and
// duration.proto).
constexpr int64_t kMinTimestampSeconds = -62135596800;  // 0001-01-01T00:00:00Z
constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31T23:59:59Z
constexpr int64_t kMaxDurationSeconds = 315576000000;   // 10,000 years
constexpr int32_t kMaxNanos = 999999999;

void AppendString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// The shortest of %.{short}g and %.{long}g that reads back as `value` (as
// protobuf's SimpleDtoa and SimpleFtoa choose).
template <typename T>
void AppendFloating(T value, int short_digits, int long_digits,
                    std::string* out) {
  if (std::isnan(value)) {
    out->append("\"NaN\"");
    return;
  }
  if (std::isinf(value)) {
    out->append(value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.*g", short_digits,
                static_cast<double>(value));
  const bool round_trips = sizeof(T) == sizeof(float)
                               ? std::strtof(buf, nullptr) == value
                               : std::strtod(buf, nullptr) == value;
  if (!round_trips) {
    std::snprintf(buf, sizeof(buf), "%.*g", long_digits,
                  static_cast<double>(value));
  }
  out->append(buf);
}

// 0, 3, 6 or 9 digits after a '.', as few as `nanos` (0..999999999) needs.
void AppendNanos(int32_t nanos, std::string* out) {
  if (nanos == 0) return;
  if (nanos % 1000000 == 0) {
    absl::StrAppendFormat(out, ".%03d", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    absl::StrAppendFormat(out, ".%06d", nanos / 1000);
  } else {
    absl::StrAppendFormat(out, ".%09d", nanos);
  }
}

class Printer {
 public:
  explicit Printer(std::string* out) : out_(out) {}

  absl::Status Message(const pb::Message& m) {
    const pb::Descriptor* d = m.GetDescriptor();
    if (d->file()->package() == "google.protobuf") return WellKnown(m);
    const pb::Reflection* r = m.GetReflection();
    out_->push_back('{');
    bool first = true;
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (!f->is_repeated() &&
          (f->cpp_type() == Cpp::CPPTYPE_MESSAGE ||
           f->containing_oneof() != nullptr) &&
          !r->HasField(m, f)) {
        continue;  // message fields, oneof members, proto3 optional: if set
      }
      if (!first) out_->push_back(',');
      first = false;
      AppendString(f->json_name(), out_);
      out_->push_back(':');
      absl::Status s = f->is_map()        ? Map(m, f)
                       : f->is_repeated() ? Repeated(m, f)
                                          : Singular(m, f);
      if (!s.ok()) return s;
    }
    out_->push_back('}');
    return absl::OkStatus();
  }

 private:
  absl::Status Singular(const pb::Message& m, const pb::FieldDescriptor* f) {
    const pb::Reflection* r = m.GetReflection();
    switch (f->cpp_type()) {
      case Cpp::CPPTYPE_INT32: absl::StrAppend(out_, r->GetInt32(m, f)); break;
      case Cpp::CPPTYPE_UINT32: absl::StrAppend(out_, r->GetUInt32(m, f)); break;
      case Cpp::CPPTYPE_INT64:
        absl::StrAppend(out_, "\"", r->GetInt64(m, f), "\"");
        break;
      case Cpp::CPPTYPE_UINT64:
        absl::StrAppend(out_, "\"", r->GetUInt64(m, f), "\"");
        break;
      case Cpp::CPPTYPE_DOUBLE:
        AppendFloating(r->GetDouble(m, f), 15, 17, out_);
        break;
      case Cpp::CPPTYPE_FLOAT:
        AppendFloating(r->GetFloat(m, f), 6, 9, out_);
        break;
      case Cpp::CPPTYPE_BOOL:
        out_->append(r->GetBool(m, f) ? "true" : "false");
        break;
      case Cpp::CPPTYPE_ENUM:
        Enum(f->enum_type(), r->GetEnumValue(m, f));
        break;
      case Cpp::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s = r->GetStringReference(m, f, &scratch);
        String(f, s);
        break;
      }
      case Cpp::CPPTYPE_MESSAGE:
        return Nested(f, r->GetMessage(m, f));
    }
    return absl::OkStatus();
  }

  absl::Status Repeated(const pb::Message& m, const pb::FieldDescriptor* f) {
    const pb::Reflection* r = m.GetReflection();
    const int n = r->FieldSize(m, f);
    out_->push_back('[');
    for (int i = 0; i < n; ++i) {
      if (i > 0) out_->push_back(',');
      switch (f->cpp_type()) {
        case Cpp::CPPTYPE_INT32:
          absl::StrAppend(out_, r->GetRepeatedInt32(m, f, i));
          break;
        case Cpp::CPPTYPE_UINT32:
          absl::StrAppend(out_, r->GetRepeatedUInt32(m, f, i));
          break;
        case Cpp::CPPTYPE_INT64:
          absl::StrAppend(out_, "\"", r->GetRepeatedInt64(m, f, i), "\"");
          break;
        case Cpp::CPPTYPE_UINT64:
          absl::StrAppend(out_, "\"", r->GetRepeatedUInt64(m, f, i), "\"");
          break;
        case Cpp::CPPTYPE_DOUBLE:
          AppendFloating(r->GetRepeatedDouble(m, f, i), 15, 17, out_);
          break;
        case Cpp::CPPTYPE_FLOAT:
          AppendFloating(r->GetRepeatedFloat(m, f, i), 6, 9, out_);
          break;
        case Cpp::CPPTYPE_BOOL:
          out_->append(r->GetRepeatedBool(m, f, i) ? "true" : "false");
          break;
        case Cpp::CPPTYPE_ENUM:
          Enum(f->enum_type(), r->GetRepeatedEnumValue(m, f, i));
          break;
        case Cpp::CPPTYPE_STRING: {
          std::string scratch;
          String(f, r->GetRepeatedStringReference(m, f, i, &scratch));
          break;
        }
        case Cpp::CPPTYPE_MESSAGE:
          if (absl::Status s = Nested(f, r->GetRepeatedMessage(m, f, i));
              !s.ok()) {
            return s;
          }
          break;
      }
    }
    out_->push_back(']');
    return absl::OkStatus();
  }

  // A map, read as its repeated entries: {"key": value, ...}.
  absl::Status Map(const pb::Message& m, const pb::FieldDescriptor* f) {
    const pb::Reflection* r = m.GetReflection();
    const pb::FieldDescriptor* key = f->message_type()->map_key();
    const pb::FieldDescriptor* value = f->message_type()->map_value();
    const int n = r->FieldSize(m, f);
    out_->push_back('{');
    for (int i = 0; i < n; ++i) {
      if (i > 0) out_->push_back(',');
      const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
      const pb::Reflection* er = entry.GetReflection();
      switch (key->cpp_type()) {
        case Cpp::CPPTYPE_STRING: {
          std::string scratch;
          AppendString(er->GetStringReference(entry, key, &scratch), out_);
          break;
        }
        case Cpp::CPPTYPE_BOOL:
          out_->append(er->GetBool(entry, key) ? "\"true\"" : "\"false\"");
          break;
        case Cpp::CPPTYPE_INT32:
          absl::StrAppend(out_, "\"", er->GetInt32(entry, key), "\"");
          break;
        case Cpp::CPPTYPE_UINT32:
          absl::StrAppend(out_, "\"", er->GetUInt32(entry, key), "\"");
          break;
        case Cpp::CPPTYPE_INT64:
          absl::StrAppend(out_, "\"", er->GetInt64(entry, key), "\"");
          break;
        case Cpp::CPPTYPE_UINT64:
          absl::StrAppend(out_, "\"", er->GetUInt64(entry, key), "\"");
          break;
        default:
          return absl::InternalError(absl::StrCat(
              f->full_name(), ": a map key of type ", key->cpp_type_name()));
      }
      out_->push_back(':');
      if (value->cpp_type() == Cpp::CPPTYPE_MESSAGE) {
        // A map's message value prints even when unset, as {}.
        if (absl::Status s = Nested(value, er->GetMessage(entry, value));
            !s.ok()) {
          return s;
        }
      } else if (absl::Status s = Singular(entry, value); !s.ok()) {
        return s;
      }
    }
    out_->push_back('}');
    return absl::OkStatus();
  }

  void Enum(const pb::EnumDescriptor* type, int number) {
    if (type->full_name() == "google.protobuf.NullValue") {
      out_->append("null");
      return;
    }
    const pb::EnumValueDescriptor* v = type->FindValueByNumber(number);
    if (v != nullptr) {
      AppendString(v->name(), out_);
    } else {
      absl::StrAppend(out_, number);
    }
  }

  void String(const pb::FieldDescriptor* f, const std::string& s) {
    if (f->type() == pb::FieldDescriptor::TYPE_BYTES) {
      AppendString(absl::Base64Escape(s), out_);
    } else {
      AppendString(s, out_);
    }
  }

  // A message-typed field's value; errors name the field.
  absl::Status Nested(const pb::FieldDescriptor* f, const pb::Message& m) {
    absl::Status s = Message(m);
    if (!s.ok() && s.code() == absl::StatusCode::kInvalidArgument) {
      return absl::InvalidArgumentError(
          absl::StrCat(f->full_name(), ": ", s.message()));
    }
    return s;
  }

  // google.protobuf.*: Timestamp, Duration and Empty; UNIMPLEMENTED for the
  // others (the caller falls back to protobuf's printer).
  absl::Status WellKnown(const pb::Message& m) {
    const pb::Descriptor* d = m.GetDescriptor();
    const std::string& name = d->full_name();
    if (name == "google.protobuf.Empty") {
      out_->append("{}");
      return absl::OkStatus();
    }
    if (name != "google.protobuf.Timestamp" &&
        name != "google.protobuf.Duration") {
      return absl::UnimplementedError(
          absl::StrCat("no JSON printer for ", name));
    }
    const pb::Reflection* r = m.GetReflection();
    const int64_t seconds = r->GetInt64(m, d->FindFieldByName("seconds"));
    const int32_t nanos = r->GetInt32(m, d->FindFieldByName("nanos"));
    if (name == "google.protobuf.Timestamp") {
      if (seconds < kMinTimestampSeconds || seconds > kMaxTimestampSeconds ||
          nanos < 0 || nanos > kMaxNanos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a Timestamp of ", seconds, " s and ", nanos,
            " ns is outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z"));
      }
      const absl::CivilSecond c = absl::ToCivilSecond(
          absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
      absl::StrAppendFormat(out_, "\"%04d-%02d-%02dT%02d:%02d:%02d", c.year(),
                            c.month(), c.day(), c.hour(), c.minute(),
                            c.second());
      AppendNanos(nanos, out_);
      out_->append("Z\"");
      return absl::OkStatus();
    }
    if (seconds < -kMaxDurationSeconds || seconds > kMaxDurationSeconds ||
        nanos < -kMaxNanos || nanos > kMaxNanos ||
        (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a Duration of ", seconds, " s and ", nanos,
          " ns is outside +-315576000000 s, or its signs differ"));
    }
    out_->push_back('"');
    if (seconds < 0 || nanos < 0) out_->push_back('-');
    absl::StrAppend(out_, seconds < 0 ? -seconds : seconds);
    AppendNanos(nanos < 0 ? -nanos : nanos, out_);
    out_->append("s\"");
    return absl::OkStatus();
  }

  std::string* out_;
};

}  // namespace

absl::Status PrintJson(const google::protobuf::Message& message,
                       std::string* out) {
  return Printer(out).Message(message);
}

}  // namespace fabric::rest
