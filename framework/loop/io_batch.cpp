// Batched I/O on one EventLoop source (see svckit/internal/io_batch.hpp).
#include <svckit/internal/io_batch.hpp>

#include <svckit/log.hpp>

#include <sys/epoll.h>

#include <cerrno>
#include <utility>

namespace svckit {

Result<std::unique_ptr<IoBatch>> IoBatch::create(EventLoop& loop, std::function<void()> afterPass) {
    std::unique_ptr<IoBatch> batch(new IoBatch(loop, std::move(afterPass)));
    if (auto r = batch->init(); !r)
        return std::unexpected(r.error());
    return batch;
}

Result<void> IoBatch::init() {
    poll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!poll_)
        return failErrno("Failed to create an epoll instance");
    auto pollSource = loop_.addIo(poll_.get(), EPOLLIN, [this](uint32_t) { onReady(); });
    if (!pollSource)
        return std::unexpected(pollSource.error());
    pollSource_ = std::move(*pollSource);
    auto wake = loop_.addDefer([this] {
        inPass_ = true;
        endPass();
    });
    if (!wake)
        return std::unexpected(wake.error());
    wake_ = std::move(*wake);
    return {};
}

IoBatch::~IoBatch() {
    // The sources first: nothing is dispatched into a half-destroyed batch.
    pollSource_.reset();
    wake_.reset();
    dirty_.clear();
    graveyard_.clear();
}

Result<void> IoBatch::add(Handler& handler, int fd, uint32_t events) {
    if (handler.fd_ >= 0)
        return fail(EEXIST, "The handler already watches fd {}", handler.fd_);
    epoll_event event{.events = events, .data = {.ptr = &handler}};
    if (::epoll_ctl(poll_.get(), EPOLL_CTL_ADD, fd, &event) < 0)
        return failErrno("Failed to watch fd {}", fd);
    handler.fd_ = fd;
    handler.events_ = events;
    return {};
}

Result<void> IoBatch::update(Handler& handler, uint32_t events) {
    if (handler.fd_ < 0)
        return fail(EBADF, "The handler watches no fd");
    // An empty mask keeps the fd in the epoll instance: a hang-up is still reported.
    epoll_event event{.events = events, .data = {.ptr = &handler}};
    if (::epoll_ctl(poll_.get(), EPOLL_CTL_MOD, handler.fd_, &event) < 0)
        return failErrno("Failed to watch fd {}", handler.fd_);
    handler.events_ = events;
    return {};
}

void IoBatch::remove(Handler& handler) noexcept {
    if (handler.fd_ < 0)
        return;
    (void)::epoll_ctl(poll_.get(), EPOLL_CTL_DEL, handler.fd_, nullptr);
    handler.fd_ = -1;
    handler.events_ = 0;
    // Epoll may have reported it in this pass already: that event is not dispatched.
    for (int i = readyNext_; i < readyCount_; ++i)
        if (ready_[i].data.ptr == &handler)
            ready_[i].data.ptr = nullptr;
}

void IoBatch::queue(std::shared_ptr<Handler> handler) {
    dirty_.push_back(std::move(handler));
    wake();
}

void IoBatch::retire(std::shared_ptr<void> object) {
    graveyard_.push_back(std::move(object));
    wake();
}

void IoBatch::wake() {
    // Within a pass, its end does the work.
    if (!inPass_)
        (void)wake_.enableOnce();
}

void IoBatch::onReady() {
    int n = ::epoll_wait(poll_.get(), ready_, readyPerWakeup, 0);
    inPass_ = true;
    readyCount_ = n > 0 ? n : 0;
    for (readyNext_ = 0; readyNext_ < readyCount_;) {
        epoll_event& event = ready_[readyNext_++];
        auto* handler = static_cast<Handler*>(event.data.ptr);
        if (!handler)
            continue; // removed earlier in this pass
        current_ = handler;
        handler->onIo(event.events);
        current_ = nullptr;
        // Marked during its own onIo() (and not serviced since): serviced now, while its data is warm.
        if (handler->dirty_) {
            handler->dirty_ = false;
            handler->service();
        }
    }
    readyCount_ = readyNext_ = 0;
    endPass();
}

void IoBatch::endPass() {
    // Handlers marked from callbacks other than their own onIo(): each serviced once. service() may run code
    // that marks more handlers (they are appended and serviced in this pass too).
    for (size_t i = 0; i < dirty_.size(); ++i) {
        std::shared_ptr<Handler> handler = std::move(dirty_[i]);
        if (handler->dirty_) {
            handler->dirty_ = false;
            handler->service();
        }
    }
    dirty_.clear();
    graveyard_.clear();
    inPass_ = false;
    if (afterPass_)
        afterPass_();
}

} // namespace svckit
