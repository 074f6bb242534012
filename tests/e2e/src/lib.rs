//! End-to-end test harness for berth: a real daemon per test.
