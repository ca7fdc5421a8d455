// libFuzzer target: a PAGES body through ParsePages, then every descriptor
// through DecodePage into a scratch page, as the receiver does: once with each
// page compressed alone, once as a record's streams (PROTOCOL.md §4).
//
// Beyond "no crash": payloads accepted by ParsePages tile the body exactly, and
// a page DecodePage reports good really has the hash its descriptor claims.
// DUP_REF copies from a second scratch page standing in for the page it names.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "migrate/common/page_codec.h"
#include "transport/pages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xm;
  static PagesView view;
  // Exactly one page each, so ASan flags any write past the page.
  static std::vector<std::byte>* page = new std::vector<std::byte>(kPageSize);
  static std::vector<std::byte>* dup = new std::vector<std::byte>(kPageSize);
  std::span<const uint8_t> body(data, size);
  Status st = ParsePages(body, view);
  if (!st.ok()) {
    if (st.code() != Code::kProtocol) std::abort();
    return 0;
  }
  size_t off = sizeof(PagesHeader) + view.descs.size() * sizeof(PageDesc);
  for (size_t i = 0; i < view.descs.size(); ++i) {
    if (view.payloads[i].size() != view.descs[i].payload_len) std::abort();
    if (!view.payloads[i].empty() && view.payloads[i].data() != data + off) std::abort();
    off += view.payloads[i].size();
  }
  if (off != size) std::abort();
  static RecordCodec* codec = new RecordCodec;
  for (bool streams : {false, true}) {
    codec->BeginRecord(streams);
    for (size_t i = 0; i < view.descs.size(); ++i) {
      const PageDesc& d = view.descs[i];
      // DELTA applies to what the page held: start from a fixed, non-zero pattern.
      std::memset(page->data(), 0xA5, kPageSize);
      std::memset(dup->data(), static_cast<int>(i), kPageSize);
      Status ds = DecodePage(d, view.payloads[i], page->data(), dup->data(), codec);
      if (ds.ok()) {
        if (PageHash(page->data()) != d.hash) std::abort();
      } else if (ds.code() != Code::kProtocol && ds.code() != Code::kIntegrity && ds.code() != Code::kUnsupported) {
        std::abort();
      }
    }
  }
  return 0;
}
