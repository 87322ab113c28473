// libFuzzer harness over the UAPI text decoders: the reply to get=1 (whole, and fed line by line
// as the socket reader does) and the reply to set=1. A malformed reply must be an error, never a
// crash, a sanitizer report or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "linux/uapi_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wgf::linux_;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)uapi::parse_get_reply(text, "wg-fuzz");
    (void)uapi::parse_set_reply(text, "wg-fuzz");

    // The socket reader feeds each line as soon as it is complete and stops at done or error.
    uapi::GetReplyParser parser("wg-fuzz");
    for (size_t pos = 0; pos < text.size();) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) break;
        if (parser.line(text.substr(pos, nl - pos)) != uapi::Step::more) break;
        pos = nl + 1;
    }
    (void)parser.finish();
    return 0;
}
