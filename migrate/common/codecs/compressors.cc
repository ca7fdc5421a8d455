#include "migrate/common/codecs/page_compressor.h"

namespace xm {

// Each method's own file defines its entry.
extern const PageCompressor kLz4Compressor;
extern const PageCompressor kZstdCompressor;

std::span<const PageCompressor* const> PageCompressors() {
  static const PageCompressor* const table[] = {&kLz4Compressor, &kZstdCompressor};
  return table;
}

const PageCompressor* CompressorFor(PageEncoding encoding) {
  for (const PageCompressor* c : PageCompressors())
    if (c->encoding == encoding) return c;
  return nullptr;
}

std::vector<CodecChoice> CodecChoices(uint64_t features) {
  std::vector<CodecChoice> out{CodecChoice{}};
  for (const PageCompressor* c : PageCompressors())
    if (features & c->feature)
      for (int level : c->levels) out.push_back({c, level});
  return out;
}

}  // namespace xm
