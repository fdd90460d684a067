// Initial metadata of the manager's server streams (Watch, WatchOffers, the
// agents' config stream).
#ifndef FABRIC_COMMON_STREAM_METADATA_H_
#define FABRIC_COMMON_STREAM_METADATA_H_

namespace fabric {

// A stream that its handler accepted sends this key (value "open") as
// initial metadata at once, before its first message, which may be long in
// coming (a Watch without its initial state). A refused stream ends with
// its status and no such key. The REST gateway (server/rest) tells the two
// apart by it: a refused stream is an ordinary HTTP error, an open one a
// 200 with chunked events.
inline constexpr char kStreamOpenKey[] = "fabric-stream";

}  // namespace fabric

#endif  // FABRIC_COMMON_STREAM_METADATA_H_
