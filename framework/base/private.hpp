// framework/base/private.hpp — included first by every private header of libsvckit: a private header
// refuses to compile outside the library, so the public/private split is enforced by the build.
#pragma once

#ifndef SVCKIT_BUILDING_LIBRARY
#error "This is a private header of libsvckit; include the public headers under <svckit/> instead."
#endif
