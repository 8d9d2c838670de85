#include <svckit/socket_options.hpp>

#include <svckit/internal/activation.hpp>
#include <svckit/internal/linux_socket.hpp>

#include <svckit/log.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <format>

namespace svckit {
namespace {

Result<bool> readFlag(int fd, int option, const char* name) {
    int value = 0;
    socklen_t length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, option, &value, &length) < 0)
        return failErrno("Failed to read {} of fd {}", name, fd);
    return value != 0;
}

Result<void> setFlag(int fd, int option, const char* name, bool on) {
    int value = on ? 1 : 0;
    if (::setsockopt(fd, SOL_SOCKET, option, &value, sizeof(value)) < 0)
        return failErrno("Failed to set {}={} on fd {}", name, value, fd);
    return {};
}

std::string_view listenDirective(SocketType type) noexcept {
    return type == SocketType::SeqPacket ? "ListenSequentialPacket" : "ListenStream";
}

int kernelType(SocketType type) noexcept {
    return type == SocketType::SeqPacket ? SOCK_SEQPACKET : SOCK_STREAM;
}

std::string typeName(int type) {
    switch (type) {
    case SOCK_STREAM:
        return "SOCK_STREAM";
    case SOCK_DGRAM:
        return "SOCK_DGRAM";
    case SOCK_SEQPACKET:
        return "SOCK_SEQPACKET";
    case SOCK_RAW:
        return "SOCK_RAW";
    default:
        return std::format("type {}", type);
    }
}

std::string familyName(int family) {
    switch (family) {
    case AF_INET:
        return "AF_INET";
    case AF_INET6:
        return "AF_INET6";
    case AF_NETLINK:
        return "AF_NETLINK";
    case AF_VSOCK:
        return "AF_VSOCK";
    case AF_PACKET:
        return "AF_PACKET";
    default:
        return std::format("family {}", family);
    }
}

std::string socketLabel(std::string_view fdName, std::string_view address) {
    if (address.empty())
        return std::format("socket '{}'", fdName);
    return std::format("socket '{}' ({})", fdName, address);
}

// A user or group name as the system resolves it (NSS), or nullopt when it has none.
std::optional<uid_t> userId(const std::string& name) {
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found)
        return std::nullopt;
    return found->pw_uid;
}

std::optional<gid_t> groupId(const std::string& name) {
    std::vector<char> buffer(16384);
    group entry{};
    group* found = nullptr;
    if (::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found)
        return std::nullopt;
    return found->gr_gid;
}

constexpr std::string_view inSocketSection = "the [Socket] section of its .socket unit";

// One option that differs from the spec: what the kernel reports, how to fix it for good in the unit, and
// the setsockopt() that fixes it for now.
struct OptionGap {
    Mismatch::Kind kind;
    int option;
    const char* optionName;
    bool wanted;
    std::string state; // "SO_PASSPIDFD is off but the service requires it"
    std::string fix;   // "add 'PassPIDFD=yes' to the [Socket] section of its .socket unit (systemd >= 258)"
};

// Extra SO_PASSCRED or SO_PASSPIDFD is deliberately not a gap: each only attaches the sender's identity to
// messages, which the service may ignore, and demanding 'PassCredentials=no' would fail units that enable it
// for a library the service links. SO_PASSRIGHTS is different: an extra "on" lets peers push fds at us.
std::vector<OptionGap> optionGaps(const AppliedOptions& options, const SocketSpec& spec) {
    std::vector<OptionGap> gaps;
    if (spec.passCredentials && !options.passCredentials)
        gaps.push_back({Mismatch::Kind::PassCredentials, SO_PASSCRED, "SO_PASSCRED", true,
                        "SO_PASSCRED is off but the service requires it",
                        std::format("add 'PassCredentials=yes' to {}", inSocketSection)});
    if (spec.passPidfd && !options.passPidfd)
        gaps.push_back({Mismatch::Kind::PassPidfd, SO_PASSPIDFD, "SO_PASSPIDFD", true,
                        "SO_PASSPIDFD is off but the service requires it",
                        std::format("add 'PassPIDFD=yes' to {} (systemd >= 258)", inSocketSection)});
    // nullopt: the kernel has no SO_PASSRIGHTS; verifySocket() says so in a note, and receiveMessage() closes
    // what arrives.
    if (options.acceptFileDescriptors && *options.acceptFileDescriptors != spec.acceptFileDescriptors) {
        if (spec.acceptFileDescriptors)
            gaps.push_back(
                {Mismatch::Kind::AcceptFileDescriptors, SO_PASSRIGHTS, "SO_PASSRIGHTS", true,
                 "SO_PASSRIGHTS is off but the service accepts file descriptors",
                 std::format("set 'AcceptFileDescriptors=yes' in {} (systemd >= 258)", inSocketSection)});
        else
            gaps.push_back(
                {Mismatch::Kind::AcceptFileDescriptors, SO_PASSRIGHTS, "SO_PASSRIGHTS", false,
                 "SO_PASSRIGHTS is on but the service does not accept file descriptors",
                 std::format("add 'AcceptFileDescriptors=no' to {} (systemd >= 258; the default is yes)",
                             inSocketSection)});
    }
    return gaps;
}

} // namespace

Result<AppliedOptions> readAppliedOptions(int fd) {
    AppliedOptions options;
    auto passCredentials = readFlag(fd, SO_PASSCRED, "SO_PASSCRED");
    if (!passCredentials)
        return std::unexpected(passCredentials.error());
    options.passCredentials = *passCredentials;

    auto passPidfd = readFlag(fd, SO_PASSPIDFD, "SO_PASSPIDFD");
    if (passPidfd)
        options.passPidfd = *passPidfd;
    else if (passPidfd.error().code() != ENOPROTOOPT) // Linux < 6.5: the option cannot be on
        return std::unexpected(passPidfd.error());

    auto passRights = readFlag(fd, SO_PASSRIGHTS, "SO_PASSRIGHTS");
    if (passRights)
        options.acceptFileDescriptors = *passRights;
    else if (passRights.error().code() != ENOPROTOOPT) // Linux < 6.16: fds always pass
        return std::unexpected(passRights.error());
    return options;
}

Result<void> applyOptions(int fd, const SocketSpec& spec) {
    if (auto r = setFlag(fd, SO_PASSCRED, "SO_PASSCRED", spec.passCredentials); !r)
        return r;
    if (auto r = setFlag(fd, SO_PASSPIDFD, "SO_PASSPIDFD", spec.passPidfd); !r) {
        // Turning off what the kernel does not have is no failure; needing it is.
        if (spec.passPidfd || r.error().code() != ENOPROTOOPT)
            return r;
    }
    if (auto r = setFlag(fd, SO_PASSRIGHTS, "SO_PASSRIGHTS", spec.acceptFileDescriptors); !r) {
        // Linux < 6.16: fds cannot be refused by the kernel; receiveMessage() closes them on receipt.
        if (r.error().code() != ENOPROTOOPT)
            return r;
    }
    return {};
}

std::vector<Mismatch> internal::compareWithSpec(const SocketInfo& info, const AppliedOptions& options,
                                                const SocketSpec& spec, std::string_view fdName) {
    std::vector<Mismatch> mismatches;
    std::string label = socketLabel(fdName, spec.address);
    std::string listenLine = std::format("{}={}", listenDirective(spec.type), spec.address);

    if (!info.isSocket || info.family != AF_UNIX) {
        // Nothing else about a non-AF_UNIX fd is worth reporting: the unit declares the wrong thing entirely.
        std::string what = info.isSocket ? familyName(info.family) : std::string("not a socket at all");
        mismatches.push_back({Mismatch::Kind::Family, false,
                              std::format("{}: is not an AF_UNIX socket ({}): use '{}' in {}", label, what,
                                          listenLine, inSocketSection)});
        return mismatches;
    }

    if (info.type != kernelType(spec.type))
        mismatches.push_back(
            {Mismatch::Kind::Type, false,
             std::format("{}: is a {} socket but the service expects {}: use '{}' in {}", label,
                         typeName(info.type), typeName(kernelType(spec.type)), listenLine, inSocketSection)});

    if (info.listening && spec.accept)
        mismatches.push_back({Mismatch::Kind::Listening, false,
                              std::format("{}: is a listening socket but the service expects a connected one "
                                          "(one instance per connection): add 'Accept=yes' to {}",
                                          label, inSocketSection)});
    else if (!info.listening && !spec.accept)
        mismatches.push_back(
            {Mismatch::Kind::Listening, false,
             std::format("{}: is a connected socket but the service expects a listening one: "
                         "remove 'Accept=yes' from {}",
                         label, inSocketSection)});

    // An accepted AF_UNIX socket reports its listener's address, so this holds for Accept=yes fds as well.
    if (!spec.address.empty() && info.address != spec.address) {
        std::string bound = info.address.empty() ? std::string("is not bound to an address")
                                                 : std::format("is bound to '{}'", info.address);
        mismatches.push_back({Mismatch::Kind::Address, false,
                              std::format("{}: {} but the service expects '{}': set '{}' in {}", label, bound,
                                          spec.address, listenLine, inSocketSection)});
    }

    // The socket file decides who may connect at all: connect() needs write permission on it, and nothing
    // else of its mode means anything (a socket bound under umask 022 is 0755). A file that lets someone
    // write whom the spec does not is a mismatch; a narrower one is not (an administrator may narrow access
    // with a drop-in, which weakens nothing).
    if (info.file) {
        mode_t wanted = spec.mode & 07777;
        if ((info.file->mode & ~wanted & 0222) != 0)
            mismatches.push_back(
                {Mismatch::Kind::Mode, false,
                 std::format("{}: the socket file has mode {:04o} but the service expects {:04o}: set "
                             "'SocketMode={:04o}' in {}",
                             label, info.file->mode, wanted, wanted, inSocketSection)});
        if (!spec.user.empty()) {
            std::optional<uid_t> uid = userId(spec.user);
            if (!uid || *uid != info.file->uid)
                mismatches.push_back(
                    {Mismatch::Kind::Owner, false,
                     std::format(
                         "{}: the socket file is owned by uid {} but the service expects user '{}'{}: "
                         "set 'SocketUser={}' in {}",
                         label, info.file->uid, spec.user, uid ? "" : " (unknown here)", spec.user,
                         inSocketSection)});
        }
        if (!spec.group.empty()) {
            std::optional<gid_t> gid = groupId(spec.group);
            if (!gid || *gid != info.file->gid)
                mismatches.push_back(
                    {Mismatch::Kind::Owner, false,
                     std::format(
                         "{}: the socket file belongs to gid {} but the service expects group '{}'{}: "
                         "set 'SocketGroup={}' in {}",
                         label, info.file->gid, spec.group, gid ? "" : " (unknown here)", spec.group,
                         inSocketSection)});
        }
    }

    for (OptionGap& gap : optionGaps(options, spec))
        mismatches.push_back({gap.kind, true, std::format("{}: {}: {}", label, gap.state, gap.fix)});
    return mismatches;
}

Result<void> internal::requireVarlinkStream(int fd, const SocketSpec& spec) {
    int type = 0;
    socklen_t length = sizeof(type);
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0)
        return failErrno("Failed to read SO_TYPE of {}", socketLabel(spec.name, spec.address));
    if (type == SOCK_STREAM)
        return {};
    return fail(
        EPROTOTYPE,
        "Failed to serve varlink on {}: it is a {} socket, but varlink is a stream of NUL-terminated "
        "messages (a packet longer than the read buffer would be cut and the next one spliced onto it): "
        "use 'ListenStream={}' in {} and SocketType::Stream in the spec",
        socketLabel(spec.name, spec.address), typeName(type), spec.address, inSocketSection);
}

VerifyReport verifySocket(const ActivatedFd& fd, const SocketSpec& spec, VerifyMode mode) {
    VerifyReport report;
    std::string label = socketLabel(fd.name, spec.address);

    // Inspect again rather than trusting fd.info: the check is about the socket as it is now.
    auto info = inspectSocket(fd.fd.get());
    if (!info) {
        report.mismatches.push_back(
            {Mismatch::Kind::Family, false, std::format("{}: {}", label, info.error().message())});
        return report;
    }
    AppliedOptions options;
    if (info->isSocket && info->family == AF_UNIX) {
        auto read = readAppliedOptions(fd.fd.get());
        if (!read) {
            report.mismatches.push_back({Mismatch::Kind::PassCredentials, false,
                                         std::format("{}: {}", label, read.error().message())});
            return report;
        }
        options = *read;
        if (!options.acceptFileDescriptors && !spec.acceptFileDescriptors)
            report.notes.push_back(label + ": the kernel has no SO_PASSRIGHTS (Linux < 6.16), so peers can "
                                           "still send file descriptors; they will be closed on receipt");
    }

    std::vector<OptionGap> gaps = optionGaps(options, spec);
    for (Mismatch& mismatch : internal::compareWithSpec(*info, options, spec, fd.name)) {
        if (mode != VerifyMode::Repair || !mismatch.repairable) {
            report.mismatches.push_back(std::move(mismatch));
            continue;
        }
        // Each repairable mismatch comes from one gap of the same kind, which names the option to set.
        auto gap = std::ranges::find(gaps, mismatch.kind, &OptionGap::kind);
        if (gap == gaps.end()) {
            report.mismatches.push_back(std::move(mismatch));
            continue;
        }
        if (auto set = setFlag(fd.fd.get(), gap->option, gap->optionName, gap->wanted); !set) {
            mismatch.message += std::format(" (repair failed: {})", set.error().message());
            report.mismatches.push_back(std::move(mismatch));
            continue;
        }
        report.repaired.push_back(std::format("{} (repaired for now: set {}={})", mismatch.message,
                                              gap->optionName, gap->wanted ? 1 : 0));
    }
    return report;
}

std::vector<internal::ActivationProblem>
internal::checkActivation(const Activation& activation, std::span<const SocketSpec> specs, VerifyMode mode) {
    std::vector<ActivationProblem> problems;
    for (const ActivatedFd& fd : activation.fds()) {
        const SocketSpec* spec = nullptr;
        for (const SocketSpec& candidate : specs)
            if (candidate.name == fd.name) {
                spec = &candidate;
                break;
            }
        if (!spec) {
            std::string known;
            for (const SocketSpec& candidate : specs)
                known += std::format("{}'{}'", known.empty() ? "" : ", ", candidate.name);
            problems.push_back(
                {.socket = fd.name,
                 .mismatch = std::nullopt,
                 .message = std::format(
                     "fd {} '{}'{}: was passed to the service but the service has no socket of that name "
                     "({}): "
                     "set 'FileDescriptorName=' in the [Socket] section of its .socket unit to one of the "
                     "service's names",
                     fd.fd.get(), fd.name,
                     fd.info.address.empty() ? std::string() : std::format(" ({})", fd.info.address),
                     known.empty() ? std::string("it declares none") : std::format("it has {}", known))});
            continue;
        }
        VerifyReport report = verifySocket(fd, *spec, mode);
        for (const std::string& repaired : report.repaired)
            logWarning("{}", repaired);
        // A note is a weaker protection than the service asked for: the operator should hear of it too.
        for (const std::string& note : report.notes)
            logWarning("{}", note);
        for (Mismatch& mismatch : report.mismatches) {
            std::string message = mismatch.message;
            problems.push_back(
                {.socket = spec->name, .mismatch = std::move(mismatch), .message = std::move(message)});
        }
    }
    return problems;
}

// A mismatch is an EINVAL, as for any invalid configuration: the service manager handed over sockets that do
// not match what the service declares, and only changing the units fixes that.
std::optional<Error> internal::activationError(std::span<const ActivationProblem> problems) {
    if (problems.empty())
        return std::nullopt;
    std::string message = std::format("Failed to verify the activated sockets: {} mismatch{} with the "
                                      "service's sockets:",
                                      problems.size(), problems.size() == 1 ? "" : "es");
    for (const ActivationProblem& problem : problems) {
        message += '\n';
        message += problem.message;
    }
    return Error(EINVAL, std::move(message));
}

Result<void> verifyActivation(const Activation& activation, std::span<const SocketSpec> specs,
                              VerifyMode mode) {
    if (auto error = internal::activationError(internal::checkActivation(activation, specs, mode)))
        return std::unexpected(std::move(*error));
    return {};
}

Result<void> checkAcceptedSocket(int fd, const SocketSpec& spec, AcceptedPolicy policy,
                                 ConnectionCounters* counters) {
    auto options = readAppliedOptions(fd);
    if (!options)
        return std::unexpected(options.error());
    std::vector<OptionGap> gaps = optionGaps(*options, spec);
    if (gaps.empty())
        return {};

    std::string label = std::format("connection on {}", socketLabel(spec.name, spec.address));
    if (policy == AcceptedPolicy::Refuse) {
        if (counters)
            counters->refusedConnections.fetch_add(1, std::memory_order_relaxed);
        std::string states;
        for (const OptionGap& gap : gaps)
            states += std::format("{}{}", states.empty() ? "" : "; ", gap.state);
        // Usually the client connected between the listener's listen() and setsockopt(); on Linux < 6.16
        // accepted sockets never inherit the options, and every connection lands here.
        return fail(EPROTO, "Refused a {}: {}", label, states);
    }

    // Repair rather than refuse by default: the gap between systemd's listen() and setsockopt() is a race
    // any client can fall into, not a misconfiguration. Fds that such a client sent before the repair are
    // still queued; receiveMessage() closes them.
    for (const OptionGap& gap : gaps) {
        if (auto set = setFlag(fd, gap.option, gap.optionName, gap.wanted); !set) {
            if (counters)
                counters->refusedConnections.fetch_add(1, std::memory_order_relaxed);
            return std::unexpected(set.error().withContext(std::format("Failed to repair a {}", label)));
        }
    }
    if (counters)
        counters->repairedConnections.fetch_add(1, std::memory_order_relaxed);
    logDebug("Repaired a {}: {} option(s) set", label, gaps.size());
    return {};
}

Result<UniqueFd> acceptConnection(int listenFd, const SocketSpec& spec, AcceptedPolicy policy,
                                  ConnectionCounters* counters, bool nonblocking) {
    int flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    int fd = -1;
    do
        fd = ::accept4(listenFd, nullptr, nullptr, flags);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return failErrno("Failed to accept a connection on {}", socketLabel(spec.name, spec.address));

    UniqueFd connection(fd);
    // On refusal the connection is closed here, when `connection` goes out of scope.
    if (auto checked = checkAcceptedSocket(connection.get(), spec, policy, counters); !checked)
        return std::unexpected(checked.error());
    return connection;
}

} // namespace svckit
