#include "client/list_writer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/output.h"

namespace fabric::client {
namespace {

constexpr size_t kGap = 3;  // spaces between columns

}  // namespace

TableWriter::TableWriter(std::vector<std::string> headers, int indent)
    : headers_(std::move(headers)), indent_(indent) {}

void TableWriter::Write(const std::vector<std::vector<std::string>>& rows,
                        std::ostream& out) {
  if (!started_) {
    std::vector<size_t> width(headers_.size(), 0);
    for (size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
    for (const auto& row : rows) {
      if (row.size() > width.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) {
        width[i] = std::max(width[i], std::max<size_t>(row[i].size(), 1));
      }
    }
    stops_.assign(width.size(), 0);
    for (size_t i = 1; i < width.size(); ++i) {
      stops_[i] = stops_[i - 1] + width[i - 1] + kGap;
    }
    started_ = true;
    WriteRow(headers_, out);
  }
  for (const auto& row : rows) WriteRow(row, out);
}

void TableWriter::WriteRow(const std::vector<std::string>& row,
                           std::ostream& out) const {
  const size_t n = std::max(row.size(), headers_.size());
  std::string line(indent_, ' ');
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) {
      const size_t stop = indent_ + (i < stops_.size() ? stops_[i] : 0);
      line.append(std::max(kGap, stop > line.size() ? stop - line.size() : 0),
                  ' ');
    }
    const bool header = &row == &headers_;
    if (i < row.size() && (header || !row[i].empty())) {
      line.append(row[i]);
    } else if (!header) {
      line.append("-");
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out << line << "\n";
}

ListWriter::ListWriter(OutputFormat format, std::vector<std::string> headers,
                       std::ostream* out)
    : format_(format), out_(out), table_(std::move(headers)) {}

void ListWriter::Add(const google::protobuf::Message& item,
                     std::vector<std::string> row) {
  if (format_ == OutputFormat::kJson) {
    // Each element indented by two spaces inside the array.
    const std::string json = ToJson(item);
    std::vector<absl::string_view> lines = absl::StrSplit(json, '\n');
    *out_ << (count_ == 0 ? "[\n" : ",\n") << "  "
          << absl::StrJoin(lines, "\n  ");
  } else {
    page_.push_back(std::move(row));
  }
  ++count_;
}

void ListWriter::AddBlock(const google::protobuf::Message& item,
                          absl::FunctionRef<void(std::ostream&)> print) {
  if (format_ == OutputFormat::kJson) {
    Add(item, {});
    return;
  }
  if (count_ > 0) *out_ << "\n";
  print(*out_);
  ++count_;
}

void ListWriter::EndPage() {
  if (format_ == OutputFormat::kJson || page_.empty()) return;
  table_.Write(page_, *out_);
  page_.clear();
  out_->flush();
}

void ListWriter::Finish() {
  EndPage();
  if (format_ == OutputFormat::kJson) {
    *out_ << (count_ == 0 ? "[]\n" : "\n]\n");
  } else if (count_ == 0) {
    *out_ << "No resources found.\n";
  }
  out_->flush();
}

}  // namespace fabric::client
