<?php echo "pong\n";
