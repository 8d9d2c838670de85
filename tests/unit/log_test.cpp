// Logging: one "<N>message" line per call on stderr, filtered by level; the prefixes only where a program
// reads them (the journal's stream, a pipe, a file), plain lines on a terminal.
#include <svckit/log.hpp>

#include <svckit/internal/log_target.hpp>
#include <svckit/unique_fd.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/stat.h>
#include <cstdlib>
#include <format>
#include <string>
#include <unistd.h>

namespace {

// Runs fn with stderr redirected to a pipe and returns what it wrote.
template <typename Fn>
std::string captureStderr(Fn fn) {
    int pipeFds[2];
    EXPECT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    int saved = ::dup(STDERR_FILENO);
    ::dup2(pipeFds[1], STDERR_FILENO);
    ::close(pipeFds[1]);
    fn();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipeFds[0], buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    ::close(pipeFds[0]);
    return out;
}

TEST(Log, WritesThePriorityPrefixTheJournalReads) {
    svckit::setLogLevel(svckit::LogLevel::Debug);
    auto out = captureStderr([] {
        svckit::logError("Failed to bind '{}': {}", "/run/x.sock", "Address already in use");
        svckit::logInfo("ready");
        svckit::logDebug("n={}", 3);
    });
    EXPECT_EQ(out, "<3>Failed to bind '/run/x.sock': Address already in use\n<6>ready\n<7>n=3\n");
}

TEST(Log, PrefixesEveryLineOfAMultiLineMessage) {
    svckit::setLogLevel(svckit::LogLevel::Info);
    auto out = captureStderr([] { svckit::logError("Refusing to start:\nfirst\nsecond"); });
    EXPECT_EQ(out, "<3>Refusing to start:\n<3>first\n<3>second\n");
}

TEST(Log, DropsMessagesBelowTheThreshold) {
    svckit::setLogLevel(svckit::LogLevel::Warning);
    auto out = captureStderr([] {
        svckit::logInfo("not shown");
        svckit::logWarning("shown");
    });
    EXPECT_EQ(out, "<4>shown\n");
    EXPECT_FALSE(svckit::logEnabled(svckit::LogLevel::Info));
    EXPECT_TRUE(svckit::logEnabled(svckit::LogLevel::Err));
    svckit::setLogLevel(svckit::LogLevel::Info);
}

// What systemd would put in $JOURNAL_STREAM for fd.
std::string journalStreamOf(int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    return std::format("{}:{}", static_cast<unsigned long long>(st.st_dev),
                       static_cast<unsigned long long>(st.st_ino));
}

// A pseudo-terminal pair: a terminal as a person's shell would give the service for stderr.
struct Pty {
    svckit::UniqueFd master;
    svckit::UniqueFd slave;
};
Pty openPty() {
    int master = -1;
    int slave = -1;
    EXPECT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    // Raw: the terminal gives back exactly the bytes written (no "\n" -> "\r\n").
    termios mode{};
    ::tcgetattr(slave, &mode);
    ::cfmakeraw(&mode);
    ::tcsetattr(slave, TCSANOW, &mode);
    return {svckit::UniqueFd(master), svckit::UniqueFd(slave)};
}

// Runs fn with stderr on `fd`, then restores it.
template <typename Fn>
void withStderrOn(int fd, Fn fn) {
    int saved = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    fn();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
}

TEST(LogTarget, AJournalStreamNamingTheFdsDeviceAndInodeIsTheJournal) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    svckit::UniqueFd readEnd(fds[0]);
    svckit::UniqueFd writeEnd(fds[1]);
    std::string stream = journalStreamOf(writeEnd.get());
    EXPECT_EQ(svckit::internal::logTarget(writeEnd.get(), stream.c_str()),
              svckit::internal::LogTarget::Journal);
}

TEST(LogTarget, AJournalStreamOfAnotherFdIsNotTrusted) {
    int first[2];
    int second[2];
    ASSERT_EQ(::pipe2(first, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(second, O_CLOEXEC), 0);
    svckit::UniqueFd a0(first[0]), a1(first[1]), b0(second[0]), b1(second[1]);
    // Inherited by a child whose stderr is a pipe of its own: the variable names some other stream.
    std::string other = journalStreamOf(b1.get());
    EXPECT_EQ(svckit::internal::logTarget(a1.get(), other.c_str()), svckit::internal::LogTarget::Other);
    EXPECT_EQ(svckit::internal::logTarget(a1.get(), "garbage"), svckit::internal::LogTarget::Other);
    EXPECT_EQ(svckit::internal::logTarget(a1.get(), nullptr), svckit::internal::LogTarget::Other);
}

TEST(LogTarget, ATerminalIsATerminalUnlessTheJournalStreamNamesIt) {
    Pty pty = openPty();
    EXPECT_EQ(svckit::internal::logTarget(pty.slave.get(), nullptr), svckit::internal::LogTarget::Terminal);
    std::string stream = journalStreamOf(pty.slave.get());
    EXPECT_EQ(svckit::internal::logTarget(pty.slave.get(), stream.c_str()),
              svckit::internal::LogTarget::Journal);
}

TEST(Log, WritesPlainLinesToATerminal) {
    Pty pty = openPty();
    svckit::setLogLevel(svckit::LogLevel::Info);
    const char* saved = std::getenv("JOURNAL_STREAM");
    std::string restore = saved ? saved : "";
    ::unsetenv("JOURNAL_STREAM");
    withStderrOn(pty.slave.get(), [] { svckit::logError("Refusing to start:\nfirst"); });
    if (saved)
        ::setenv("JOURNAL_STREAM", restore.c_str(), 1);
    std::string out(256, '\0');
    ssize_t n = ::read(pty.master.get(), out.data(), out.size());
    ASSERT_GT(n, 0);
    out.resize(static_cast<size_t>(n));
    EXPECT_EQ(out, "Refusing to start:\nfirst\n");
}

TEST(Log, PrefixesLinesOnTheJournalStreamAndOnAPipe) {
    svckit::setLogLevel(svckit::LogLevel::Info);
    // A pipe is what the other tests capture; here it is also named by $JOURNAL_STREAM, as systemd sets it.
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    svckit::UniqueFd readEnd(fds[0]);
    svckit::UniqueFd writeEnd(fds[1]);
    std::string stream = journalStreamOf(writeEnd.get());
    ::setenv("JOURNAL_STREAM", stream.c_str(), 1);
    withStderrOn(writeEnd.get(), [] { svckit::logWarning("on the journal"); });
    ::unsetenv("JOURNAL_STREAM");
    withStderrOn(writeEnd.get(), [] { svckit::logWarning("on a pipe"); });
    writeEnd.reset();
    std::string out(256, '\0');
    ssize_t n = ::read(readEnd.get(), out.data(), out.size());
    ASSERT_GT(n, 0);
    out.resize(static_cast<size_t>(n));
    EXPECT_EQ(out, "<4>on the journal\n<4>on a pipe\n");
}

} // namespace
