// UniqueFd: adopts, closes once, moves, releases, duplicates with CLOEXEC.
#include <svckit/unique_fd.hpp>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace {

bool isOpen(int fd) {
    return ::fcntl(fd, F_GETFD) >= 0;
}

int openDevNull() {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    return fd;
}

TEST(UniqueFd, ClosesTheAdoptedDescriptorWhenDestroyed) {
    int raw = openDevNull();
    {
        svckit::UniqueFd fd(raw);
        EXPECT_TRUE(fd.isValid());
        EXPECT_EQ(fd.get(), raw);
    }
    EXPECT_FALSE(isOpen(raw));
}

TEST(UniqueFd, DefaultConstructedIsEmpty) {
    svckit::UniqueFd fd;
    EXPECT_FALSE(fd);
    EXPECT_EQ(fd.get(), -1);
}

TEST(UniqueFd, MoveTransfersOwnershipAndEmptiesTheSource) {
    int raw = openDevNull();
    svckit::UniqueFd a(raw);
    svckit::UniqueFd b(std::move(a));
    EXPECT_FALSE(a.isValid()); // NOLINT(bugprone-use-after-move): the moved-from state is specified
    EXPECT_EQ(b.get(), raw);
    svckit::UniqueFd c;
    c = std::move(b);
    EXPECT_EQ(c.get(), raw);
    EXPECT_TRUE(isOpen(raw));
}

TEST(UniqueFd, MoveAssignmentClosesThePreviouslyOwnedDescriptor) {
    int first = openDevNull();
    int second = openDevNull();
    svckit::UniqueFd a(first);
    a = svckit::UniqueFd(second);
    EXPECT_FALSE(isOpen(first));
    EXPECT_TRUE(isOpen(second));
}

TEST(UniqueFd, ReleaseGivesUpOwnership) {
    int raw = openDevNull();
    {
        svckit::UniqueFd fd(raw);
        EXPECT_EQ(fd.release(), raw);
        EXPECT_FALSE(fd.isValid());
    }
    EXPECT_TRUE(isOpen(raw));
    ::close(raw);
}

TEST(UniqueFd, DupMakesAnIndependentCloexecCopy) {
    svckit::UniqueFd fd(openDevNull());
    auto copy = fd.dup();
    ASSERT_TRUE(copy.has_value()) << copy.error().message();
    EXPECT_NE(copy->get(), fd.get());
    EXPECT_TRUE(::fcntl(copy->get(), F_GETFD) & FD_CLOEXEC);
    int copied = copy->get();
    fd.reset();
    EXPECT_TRUE(isOpen(copied));
}

TEST(UniqueFd, DupOfAnEmptyDescriptorIsEbadf) {
    svckit::UniqueFd fd;
    auto copy = fd.dup();
    ASSERT_FALSE(copy.has_value());
    EXPECT_EQ(copy.error().code(), EBADF);
}

} // namespace
