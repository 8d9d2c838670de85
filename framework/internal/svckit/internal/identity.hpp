// svckit/internal/identity.hpp — the pure parts of reading process facts that the tests check on their own.
// Never installed: not part of svckit's API (users read ProcessFacts::unit).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace svckit::internal {

// The systemd unit a cgroup v2 path belongs to, as sd_cgroup_path_get_unit() sees it: the first path
// component below the slices that names a .service or .scope ("/system.slice/foo.service/x" ->
// "foo.service"); nullopt when none.
[[nodiscard]] std::optional<std::string> unitOfCgroup(std::string_view cgroupPath);

} // namespace svckit::internal
