// Error and Result: a positive errno and a message that says what failed and why.
#include <svckit/error.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

using ::testing::HasSubstr;

svckit::Result<int> parsePort(std::string_view text) {
    if (text != "80")
        return svckit::fail(EINVAL, "Failed to parse port '{}'", text);
    return 80;
}

TEST(Error, FromErrnoAppendsTheSystemMessage) {
    auto e = svckit::Error::fromErrno(EADDRINUSE, "Failed to bind '/run/x.sock'");
    EXPECT_EQ(e.code(), EADDRINUSE);
    EXPECT_EQ(e.message(), "Failed to bind '/run/x.sock': Address already in use");
}

TEST(Error, NegativeCodesAreStoredPositive) {
    svckit::Error e(-ENOENT, "gone");
    EXPECT_EQ(e.code(), ENOENT);
}

TEST(Error, WithContextPrefixesTheMessageAndKeepsTheCode) {
    auto e = svckit::Error(EPERM, "Operation not permitted").withContext("Failed to start");
    EXPECT_EQ(e.code(), EPERM);
    EXPECT_EQ(e.message(), "Failed to start: Operation not permitted");
}

TEST(Result, FailFormatsTheMessage) {
    auto r = parsePort("eighty");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(r.error().message(), "Failed to parse port 'eighty'");
    EXPECT_EQ(parsePort("80").value(), 80);
}

TEST(Result, FailErrnoUsesTheCurrentErrno) {
    errno = ECONNREFUSED;
    svckit::Result<void> r = svckit::failErrno("Failed to connect to '{}'", "/run/y.sock");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ECONNREFUSED);
    EXPECT_THAT(r.error().message(), HasSubstr("Failed to connect to '/run/y.sock': Connection refused"));
}

} // namespace
