// framework/varlink/framing.hpp — the input buffer arithmetic shared by the varlink server's connections and
// the client: unprocessed bytes live in [begin, end) of a reused buffer, and no NUL lies before `scanned`.
#pragma once

#include "base/private.hpp"

#include <cstddef>
#include <cstring>
#include <vector>

namespace svckit::varlink::detail {

// Makes room for `chunk` more bytes after `end`: first by moving the unprocessed bytes to the front of the
// buffer, then, if that is not enough, by growing it. The offsets follow the bytes.
inline void makeRoom(std::vector<char>& buffer, size_t& begin, size_t& scanned, size_t& end, size_t chunk) {
    if (buffer.size() - end >= chunk)
        return;
    if (begin > 0) {
        std::memmove(buffer.data(), buffer.data() + begin, end - begin);
        end -= begin;
        scanned -= begin;
        begin = 0;
    }
    if (buffer.size() - end < chunk)
        buffer.resize(end + chunk);
}

} // namespace svckit::varlink::detail
