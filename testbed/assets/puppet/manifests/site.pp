# Every host of the test bed gets the swh services' configuration.
node default {
  include swh_testbed
}
