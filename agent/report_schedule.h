// When the agent's next status report is due: a heartbeat interval after
// the last one, or at once when something the manager should hear about
// now has happened (Request). The heartbeat thread sleeps until one or the
// other; nothing polls.
//
//   ReportSchedule schedule(Clock::Real());
//   schedule.Start(interval);          // a session begins
//   while (schedule.Wait()) Report();  // the heartbeat thread
//   ...
//   schedule.Request();                // from any thread: report now
//   schedule.Stop();                   // the session ends; Wait returns false
//
// Thread-safe.
#ifndef FABRIC_AGENT_REPORT_SCHEDULE_H_
#define FABRIC_AGENT_REPORT_SCHEDULE_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace fabric::agent {

class ReportSchedule {
 public:
  // `clock` (not owned, must outlive this) says when a heartbeat is due.
  // Stopped until Start().
  explicit ReportSchedule(const Clock* clock) : clock_(clock) {}

  ReportSchedule(const ReportSchedule&) = delete;
  ReportSchedule& operator=(const ReportSchedule&) = delete;

  // Arms the schedule: the next heartbeat is `interval` from now. A request
  // made meanwhile is kept.
  void Start(absl::Duration interval) ABSL_LOCKS_EXCLUDED(mu_);
  // Disarms it and wakes Wait(), which returns false until Start().
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Asks for a report now, ahead of the heartbeat; wakes Wait().
  void Request() ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until a report is due (requested, or the heartbeat interval has
  // passed by the clock) and returns true, having taken the request and
  // set the next heartbeat an interval from now; false once stopped.
  bool Wait() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const Clock* const clock_;  // not owned
  absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration interval_ ABSL_GUARDED_BY(mu_);
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_REPORT_SCHEDULE_H_
