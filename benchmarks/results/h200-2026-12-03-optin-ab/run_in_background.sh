#!/usr/bin/env bash
# run script $1 in the background into /root/suite and pack it into $OUT until done
setsid nohup bash "$1" > /root/suite.log 2>&1 < /dev/null &
sleep 5
bash .gpu/watch.sh "${2:-575}"
