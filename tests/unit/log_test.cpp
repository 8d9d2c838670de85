// Logging: one "<N>message" line per call on stderr, filtered by level.
#include <svckit/log.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
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

} // namespace
