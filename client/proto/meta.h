// proto/meta.h: the few type-list tools the protocol's compile-time checks are built from:
// whether a type is an alternative of a variant, a variant of distinct types, and sets of types
// compared without regard to order.
#pragma once

#include <cstddef>
#include <type_traits>
#include <variant>

namespace vvm::rpc::meta {

template <class... T>
struct List {};

template <class T, class... U>
inline constexpr bool kIn = (std::is_same_v<T, U> || ...);

// Whether T is one of V's alternatives.
template <class T, class V>
inline constexpr bool kIsAlternative = false;
template <class T, class... U>
inline constexpr bool kIsAlternative<T, std::variant<U...>> = kIn<T, U...>;

// std::variant of T..., each type once, in the order of its first appearance.
namespace detail {
template <class Done, class... Todo>
struct Unique;
template <class... Done>
struct Unique<List<Done...>> {
  using type = std::variant<Done...>;
};
template <class... Done, class T, class... Todo>
struct Unique<List<Done...>, T, Todo...> {
  using type = typename std::conditional_t<kIn<T, Done...>, Unique<List<Done...>, Todo...>,
                                           Unique<List<Done..., T>, Todo...>>::type;
};
}  // namespace detail
template <class... T>
using UniqueVariant = typename detail::Unique<List<>, T...>::type;

// Whether no type appears twice in T....
template <class... T>
inline constexpr bool kDistinct = std::variant_size_v<UniqueVariant<T...>> == sizeof...(T);

// Whether every type of A is in B.
template <class A, class B>
inline constexpr bool kSubset = false;
template <class... A, class... B>
inline constexpr bool kSubset<List<A...>, List<B...>> = (kIn<A, B...> && ...);

}  // namespace vvm::rpc::meta
