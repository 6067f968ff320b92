// A list of connections waiting for one kind of deadline (handshake, idle, close...). Every
// entry of a list gets the same timeout, so appending keeps the list sorted by deadline: add,
// remove and "what expires next" are O(1), with no heap and no allocation. Intrusive: T has
// the members `T* prev`, `T* next` and `int64_t deadline_ms`, so a connection is on at most
// one list at a time.
#pragma once

#include <cstdint>

namespace flowrelay::net {

template <class T>
struct DeadlineList {
  T* head = nullptr;  // expires first
  T* tail = nullptr;

  bool empty() const { return head == nullptr; }

  // `c` must not be on a list. `deadline_ms` must not be before the tail's.
  void push_back(T* c, int64_t deadline_ms) {
    c->deadline_ms = deadline_ms;
    c->prev = tail;
    c->next = nullptr;
    (tail ? tail->next : head) = c;
    tail = c;
  }

  // `c` must be on this list.
  void remove(T* c) {
    (c->prev ? c->prev->next : head) = c->next;
    (c->next ? c->next->prev : tail) = c->prev;
    c->prev = c->next = nullptr;
  }

  // The head if its deadline is at or before `now_ms`, else null.
  T* expired(int64_t now_ms) const { return head && head->deadline_ms <= now_ms ? head : nullptr; }
};

}  // namespace flowrelay::net
