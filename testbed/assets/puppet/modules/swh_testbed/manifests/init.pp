# @summary The swh services of the swh-deploy test bed, managed as SWH's
#   puppet manages them: the configuration file of each service under
#   /etc/softwareheritage, and a restart of its unit when that file changes.
#
# @param services
#   Service name => { config => absolute path, unit => systemd unit,
#   content => the file's content }. A changed content is written and the
#   unit restarted (when it runs): the agent's exit code is 2.
# @param managed
#   The services of this host (per-host data, e.g. `[storage]`); default:
#   every service of $services.
# @param fail
#   Adds a resource that fails (an exec of /bin/false): the agent's exit
#   code is 4, or 6 with changes.
# @param run_seconds
#   When positive, the run sleeps that long (an exec of /bin/sleep, a change):
#   a slow puppet run.
class swh_testbed (
  Hash[String, Struct[{ config => Pattern[/^\//], unit => String[1], content => String }]] $services = {},
  Optional[Array[String]] $managed = undef,
  Boolean $fail = false,
  Integer[0] $run_seconds = 0,
) {
  $names = $managed ? {
    undef   => keys($services),
    default => $managed,
  }
  $names.each |String $name| {
    $svc = $services[$name]
    if $svc == undef {
      fail("swh_testbed::managed: unknown service '${name}'")
    }
    file { $svc['config']:
      ensure  => file,
      owner   => 'root',
      group   => 'root',
      mode    => '0644',
      content => $svc['content'],
      notify  => Service[$svc['unit']],
    }
    service { $svc['unit']:
      provider   => 'systemd',
      hasrestart => true,
    }
  }
  if $fail {
    exec { 'swh_testbed failing resource':
      command => '/bin/false',
    }
  }
  if $run_seconds > 0 {
    exec { 'swh_testbed slow run':
      command => "/bin/sleep ${run_seconds}",
      timeout => $run_seconds + 60,
    }
  }
}
