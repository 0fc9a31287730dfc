// ODR test, part A: this TU and odr_b.cpp both include every public header
// (the umbrella and the generated list of all headers). Linking them into one
// executable fails if a header defines a non-inline function or variable.
#include <recblocks/recblocks.hpp>

#include "recblocks_all_headers.hpp"

int recblocks_odr_b();

int main() {
    const recblocks::Shape<2> s{{2, 3}};
    return (s.numel() == 6 && recblocks_odr_b() == 6) ? 0 : 1;
}
