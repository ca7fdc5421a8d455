// Writes small seed inputs for the fuzz targets: valid records and bodies built
// with the real encoders, so the fuzzers start from inputs that go deep.
//
//   xm_fuzz_corpus DIR   -> DIR/{record,messages,pages,receiver,secure,emu_offer}/seed-N
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "dirtylog/sim/sim_backend.h"
#include "dirtylog/xen/stream/byte_io.h"
#include "dirtylog/xen/stream/writer.h"
#include "migrate/cli/emu_offer.h"
#include "migrate/common/page_codec.h"
#include "tests/support/stateless_batch.h"
#include "tests/fuzz/receiver_input.h"
#include "transport/messages.h"
#include "transport/record.h"
#include "tests/fuzz/secure_input.h"

namespace {

using namespace xm;
using xm::testing::Flatten;
namespace fs = std::filesystem;

void Write(const fs::path& dir, int n, const std::vector<uint8_t>& bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / ("seed-" + std::to_string(n)), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A whole migration of an 8-page sim guest, as a list of records.
struct Migration {
  std::vector<std::pair<RecordType, std::vector<uint8_t>>> records;
};

// Compressed with `codec` (none: raw pages), each page alone or, with
// `streams`, as the record's stream (PROTOCOL.md §4).
Migration MakeMigration(const CodecChoice& codec, bool streams = false) {
  const bool lz4 = codec.method != nullptr;
  // Small on purpose: a zero page, a text page and a random page of the mixed
  // fill, two of them with the workload's counter, and zero pages after.
  constexpr uint64_t kPages = 8;
  WorkloadSpec spec;
  spec.ws_bytes = 3 * kPageSize;
  spec.hot_bytes = 2 * kPageSize;
  spec.fill = Fill::kMixed;
  auto src = SimBackend::CreateSource(kPages * kPageSize, spec, CpuPolicy{"", {}, "none", {}});
  if (!src.ok()) {
    std::fprintf(stderr, "sim source: %s\n", src.status().ToString().c_str());
    std::exit(1);
  }
  while ((*src)->Progress().counter < 100) std::this_thread::yield();
  (void)(*src)->Pause();

  Migration m;
  Hello h;
  h.role = Role::kSource;
  h.features = (lz4 ? codec.method->feature : 0) | (streams ? kFeatureRecordStreams : 0);
  h.session_id = 0x5EED;
  m.records.push_back({RecordType::kHello, EncodeHello(h)});
  Shape shape{(*src)->shape(), "sim"};
  m.records.push_back({RecordType::kShape, EncodeShape(shape)});
  m.records.push_back({RecordType::kCpuPolicy, EncodeCpuPolicy(CpuPolicy{"GenuineIntel", {1, 2}, "none", {}})});

  // Each page is encoded by the real BatchBuilder on its own, then the batch is
  // assembled here: a builder holding several pages puts every page after an
  // odd-length LZ4 payload at an unaligned address, which IsZeroPage reads as
  // uint64_t (reported; UBSan aborts on it in this build).
  BatchBuilder b;
  EncodeCounts counts;
  std::vector<uint64_t> hashes;
  std::vector<uint8_t> descs, payloads;
  RecordCodec record;
  record.BeginRecord(true);
  for (uint64_t pfn = 0; pfn < kPages; ++pfn) {
    b.Reset(0);
    hashes.push_back(xm::testing::AddPage(b, pfn, (*src)->DirectMemory() + pfn * kPageSize, codec, counts,
                                          streams ? &record : nullptr));
    std::vector<uint8_t> one = Flatten(b.Body());
    descs.insert(descs.end(), one.begin() + sizeof(PagesHeader), one.begin() + sizeof(PagesHeader) + sizeof(PageDesc));
    payloads.insert(payloads.end(), one.begin() + sizeof(PagesHeader) + sizeof(PageDesc), one.end());
  }
  PagesHeader ph;
  ph.count = kPages;
  std::vector<uint8_t> pages(sizeof ph);
  std::memcpy(pages.data(), &ph, sizeof ph);
  pages.insert(pages.end(), descs.begin(), descs.end());
  pages.insert(pages.end(), payloads.begin(), payloads.end());
  m.records.push_back({RecordType::kPages, pages});
  m.records.push_back({RecordType::kRoundEnd, EncodeRoundEnd(RoundEnd{0, kPages, {1}})});
  auto blob = (*src)->SaveVcpuState();
  m.records.push_back({RecordType::kVcpuState, EncodeVcpuState(VcpuState{"sim-v1", *blob})});

  // The digest PROTOCOL.md §5 defines: XXH3-128 over the page hashes in pfn order.
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(hashes.data(), hashes.size() * sizeof(uint64_t)));
  Commit commit;
  std::memcpy(commit.digest.data(), c.digest, commit.digest.size());
  commit.pages = kPages;
  commit.final_round = 0;
  commit.verify = lz4 ? VerifyMode::kFull : VerifyMode::kIncremental;
  m.records.push_back({RecordType::kCommit, EncodeCommit(commit)});
  m.records.push_back({RecordType::kGo, {}});
  return m;
}

std::vector<uint8_t> Framed(const Migration& m) {
  std::vector<uint8_t> wire;
  for (const auto& [type, body] : m.records) {
    iovec v{const_cast<uint8_t*>(body.data()), body.size()};
    RecordHeader h = MakeHeader(type, std::span<const iovec>(&v, 1));
    const auto* hp = reinterpret_cast<const uint8_t*>(&h);
    wire.insert(wire.end(), hp, hp + sizeof h);
    wire.insert(wire.end(), body.begin(), body.end());
  }
  return wire;
}

std::vector<uint8_t> Chunked(const Migration& m, size_t upto) {
  std::vector<uint8_t> in;
  for (size_t i = 0; i < m.records.size() && i < upto; ++i)
    testing::AppendChunk(in, static_cast<uint32_t>(m.records[i].first), 0, m.records[i].second);
  return in;
}

std::vector<uint8_t> WithSelector(uint8_t selector, std::vector<uint8_t> body) {
  body.insert(body.begin(), selector);
  return body;
}

}  // namespace

// A PAGES body of eight overlapping text pages as one record stream of
// `choice`: every page after the first refers back into the ones before it.
std::vector<uint8_t> StreamOfOverlappingPages(const CodecChoice& choice) {
  BatchBuilder b;
  b.Reset(0);
  RecordCodec record;
  record.BeginRecord(true);
  EncodeCounts counts;
  const auto pages = xm::testing::OverlappingTextPages(8, 0xC0FFEE, 1536);
  for (uint64_t pfn = 0; pfn < pages.size(); ++pfn) xm::testing::AddPage(b, pfn, pages[pfn].data(), choice, counts, &record);
  return Flatten(b.Body());
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const fs::path dir = argv[1];
  Migration raw = MakeMigration({}), lz4 = MakeMigration({CompressorFor(PageEncoding::kLz4)}),
            zstd = MakeMigration({CompressorFor(PageEncoding::kZstd), 1});
  Migration lz4_stream = MakeMigration({CompressorFor(PageEncoding::kLz4)}, true),
            zstd_stream = MakeMigration({CompressorFor(PageEncoding::kZstd), 1}, true);

  // receiver: whole migrations, a prefix, and one sent unframed.
  Write(dir / "receiver", 0, Chunked(raw, SIZE_MAX));
  Write(dir / "receiver", 1, Chunked(lz4, SIZE_MAX));
  Write(dir / "receiver", 2, Chunked(raw, 3));
  Write(dir / "receiver", 4, Chunked(zstd, SIZE_MAX));
  Write(dir / "receiver", 5, Chunked(lz4_stream, SIZE_MAX));
  Write(dir / "receiver", 6, Chunked(zstd_stream, SIZE_MAX));
  std::vector<uint8_t> unframed = Framed(raw);
  unframed.insert(unframed.begin(), testing::kRawInput);
  Write(dir / "receiver", 3, unframed);

  // record: framed streams behind the limit selector byte.
  Write(dir / "record", 0, WithSelector(0, Framed(raw)));
  Write(dir / "record", 1, WithSelector(1, Framed(lz4)));

  // secure: a migration's records tagged with the fuzz key or sealed as TLS
  // records with the fuzz secret, the same in the clear for the harness to
  // protect, and (for the TLS receiver) raw records.
  Write(dir / "secure", 0, WithSelector(testing::kSecureMacWire, testing::MacWire(Framed(raw))));
  Write(dir / "secure", 1, WithSelector(testing::kSecureMacPlain, Framed(lz4)));
  Write(dir / "secure", 2, WithSelector(testing::kSecureTls, Framed(raw)));
  Write(dir / "secure", 3, WithSelector(testing::kSecureTlsWire, testing::TlsWire(Framed(raw))));
  Write(dir / "secure", 4, WithSelector(testing::kSecureTlsPlain, Framed(lz4)));
  Write(dir / "secure", 5, WithSelector(testing::kSecureTlsPlain + testing::kSecureModes, Framed(raw)));  // padded
  // One record body of 40000 bytes: a read that large opens its TLS records in
  // batches on two threads (transport/tls_record.h), plain, padded, and sealed.
  Migration big;
  big.records.push_back({RecordType::kVcpuState, std::vector<uint8_t>(40000)});
  for (size_t i = 0; i < big.records[0].second.size(); ++i) big.records[0].second[i] = static_cast<uint8_t>(i * 131 + 7);
  Write(dir / "secure", 6, WithSelector(testing::kSecureTlsPlain, Framed(big)));
  Write(dir / "secure", 7, WithSelector(testing::kSecureTlsPlain + testing::kSecureModes, Framed(big)));
  Write(dir / "secure", 8, WithSelector(testing::kSecureTlsWire, testing::TlsWire(Framed(big))));

  // messages: one valid body per decoder (selector = fuzz_messages' case number).
  Hello hello;
  hello.streams = 2;
  Write(dir / "messages", 0, WithSelector(0, EncodeHello(hello)));
  Write(dir / "messages", 1, WithSelector(1, EncodeAuth(Auth{})));
  Write(dir / "messages", 2, WithSelector(2, lz4.records[1].second));
  Write(dir / "messages", 3, WithSelector(3, lz4.records[2].second));
  Write(dir / "messages", 4, WithSelector(4, EncodeJoin(Join{7, 1, {}})));
  Write(dir / "messages", 5, WithSelector(5, EncodeRoundEnd(RoundEnd{3, 100, {4, 5}})));
  Write(dir / "messages", 6, WithSelector(6, lz4.records[5].second));
  Write(dir / "messages", 7, WithSelector(7, lz4.records[6].second));
  Write(dir / "messages", 8, WithSelector(8, EncodeReady(Ready{})));
  Write(dir / "messages", 9, WithSelector(9, EncodeAbort(Abort{Code::kIncompatible, "missing avx2"})));
  Write(dir / "messages", 10, WithSelector(10, {}));
  Write(dir / "messages", 11, WithSelector(11, EncodeRoundAck(2)));
  Write(dir / "messages", 12, WithSelector(12, EncodeResume(Resume{7, 3})));
  Write(dir / "messages", 13, WithSelector(13, EncodeResumeState(ResumeState{2, 130, {~0ull, 5, 3}})));

  // emu_offer: what an xmotion save writes first (headers, STATIC_DATA_END,
  // the offer), and what a stock save writes (headers, then a page).
  {
    xen::StreamOptions so;
    so.framing = xen::Framing::kLibxc;
    xen::VectorSink offer, stock;
    xen::StreamWriter w(offer, so), v(stock, so);
    const std::string body = emu::kOfferBody;
    if (!w.Begin(nullptr).ok() ||
        !w.AddOptionalRecord(emu::kOfferRecord, std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()))
             .ok())
      return 1;
    std::vector<std::byte> page(4096, std::byte{7});
    const std::byte* pages[] = {page.data()};
    const uint64_t pfns[] = {5};
    if (!v.Begin(nullptr).ok() || !v.AddPages(pfns, pages).ok()) return 1;
    Write(dir / "emu_offer", 0, offer.bytes());
    Write(dir / "emu_offer", 1, stock.bytes());
  }

  // pages: the PAGES bodies of both migrations.
  Write(dir / "pages", 0, raw.records[3].second);
  Write(dir / "pages", 1, lz4.records[3].second);
  Write(dir / "pages", 2, zstd.records[3].second);
  Write(dir / "pages", 3, lz4_stream.records[3].second);
  Write(dir / "pages", 4, zstd_stream.records[3].second);
  Write(dir / "pages", 5, StreamOfOverlappingPages({CompressorFor(PageEncoding::kLz4)}));
  Write(dir / "pages", 6, StreamOfOverlappingPages({CompressorFor(PageEncoding::kZstd), 1}));
  return 0;
}
