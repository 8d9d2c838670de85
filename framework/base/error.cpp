#include <svckit/error.hpp>

#include <cstring>

namespace svckit {

Error Error::fromErrno(int code, std::string_view what) {
    if (code < 0)
        code = -code;
    return Error(code, std::format("{}: {}", what, std::strerror(code)));
}

Error Error::withContext(std::string_view context) const {
    return Error(code_, std::format("{}: {}", context, message_));
}

} // namespace svckit
