// Streaming list output for fabricctl: a list is written page by page as the
// pages arrive, so the client holds one page, never the whole list.
//
// Tables are kubectl-like: an upper-case header row, columns separated by
// three spaces, "-" for an empty cell, trailing spaces trimmed. The column
// stops are set by the header and the first batch of rows; a later cell wider
// than its column pushes the rest of its row right (three spaces after it at
// least), and the next column that can start at its stop does. A table
// written in one batch is exactly the one sized by all its rows.
//
// JSON is one array written element by element: "[]" when empty, else
// "[\n", the elements (protobuf JSON, each line indented by two spaces)
// separated by ",\n", and "\n]". Byte for byte what ToJsonArray prints.
//
//   ListWriter w(OutputFormat::kTable, {"NAME", "STATE"}, &std::cout);
//   for (each page) { for (item : page) w.Add(item, {name, state}); w.EndPage(); }
//   w.Finish();
//
// Not thread-safe. Writes only to the stream it was given (not owned, must
// outlive the writer).
#ifndef FABRIC_CLIENT_LIST_WRITER_H_
#define FABRIC_CLIENT_LIST_WRITER_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "google/protobuf/message.h"

namespace fabric::client {

enum class OutputFormat { kTable, kJson };

// Writes a table in batches of rows; see the file comment for the layout.
class TableWriter {
 public:
  // `indent` spaces are put before each line.
  explicit TableWriter(std::vector<std::string> headers, int indent = 0);

  // Writes the header before the first batch, then `rows`. The first call
  // sets the column stops, from the header and its rows. Rows shorter than
  // the header are padded with "-", and empty cells print "-".
  void Write(const std::vector<std::vector<std::string>>& rows,
             std::ostream& out);

 private:
  void WriteRow(const std::vector<std::string>& row, std::ostream& out) const;

  const std::vector<std::string> headers_;
  const int indent_;
  bool started_ = false;
  // Where each column starts, counted from the end of the indent.
  std::vector<size_t> stops_;
};

// One list, in a table or as a JSON array, page by page.
class ListWriter {
 public:
  // `headers` are the table's columns (unused with kJson).
  ListWriter(OutputFormat format, std::vector<std::string> headers,
             std::ostream* out);

  // One item of the current page: its JSON is written now (kJson), its
  // table `row` when the page ends.
  void Add(const google::protobuf::Message& item,
           std::vector<std::string> row);
  // An item that is a block of its own in table mode (an address map):
  // `print` writes it, after a blank line unless it is the first. kJson as
  // Add.
  void AddBlock(const google::protobuf::Message& item,
                absl::FunctionRef<void(std::ostream&)> print);
  // Writes the page's table rows (after the header, before the first page).
  void EndPage();
  // After the last page: closes the JSON array ("[]" for none), or says "No
  // resources found." when the table had no row. Not called when the list
  // stops on an error: the JSON array is then left open, so that no parser
  // takes the part printed for the whole list.
  void Finish();

  // Items added so far.
  int64_t count() const { return count_; }

 private:
  const OutputFormat format_;
  std::ostream* const out_;
  TableWriter table_;
  std::vector<std::vector<std::string>> page_;
  int64_t count_ = 0;
};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_LIST_WRITER_H_
