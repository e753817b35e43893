<?php
// The index of a directory: /blog/ runs it.
echo "blog index\n";
