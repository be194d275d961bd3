<?php
// Slow page: sleeps for ?ms= milliseconds (default 120), then answers a known body.
usleep(((int) ($_GET['ms'] ?? 120)) * 1000);
header('Content-Type: text/plain');
echo "slow page body\n";
